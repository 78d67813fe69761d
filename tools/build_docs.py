"""Build mylib's docs site, and README.md, from the notebooks without Quarto.

    python tools/build_docs.py                   # the site, into _site/ (open _site/index.html)
    python tools/build_docs.py --readme          # rewrite README.md from nbs/index.ipynb
    python tools/build_docs.py --readme --check  # exit 1 if README.md is stale

nbdev's usual path renders with Quarto, which cannot be installed offline. This script keeps nbdev's own notebook
processing (`nbdev.processors.FilterDefaults`, what `nbdev.serve.proc_nbs` runs on each notebook: hidden and exported
cells removed, `show_doc` cells added and rendered, backticked names linked to their docs), turns the Quarto-isms it
leaves into plain notebooks, and renders those with Sphinx + myst-nb + pydata-sphinx-theme: static HTML with
offline search and MathJax, no CDN. `nbdev-docs` still works where Quarto exists.
"""
import os, re, shutil, sys, time, copy, difflib
from pathlib import Path
from urllib.parse import urlsplit
from fastcore.script import call_parse

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
README_NB = NBS/'index.ipynb'
# Markdown files outside nbs/ that become pages: source (relative to ROOT) -> page name
MD_PAGES = {'bench/RESULTS.md': 'benchmarks'}

def _renderer():
    "nbdev's `show_doc` renderer, plus a docments table of the parameters after the docstring."
    from nbdev.showdoc import BasicMarkdownRenderer
    from fastcore.docments import DocmentTbl, DocmentText
    class TableRenderer(BasicMarkdownRenderer):
        "The signature without its comments, the docstring, then a table of each parameter's type, default and docment."
        def _repr_markdown_(self):
            try: tbl = DocmentTbl(self.sym)
            except Exception: return super()._repr_markdown_()
            if not tbl.has_docment: return super()._repr_markdown_()
            if isinstance(self.dm, DocmentText): # the table says it: drop the comments from the signature
                self.dm = copy.copy(self.dm)
                self.dm.dm = {k: {**v, 'docment': None} for k,v in self.dm.dm.items()}
            return super()._repr_markdown_() + '\n\n' + str(tbl)
    return TableRenderer

def process_nb(src:Path, links=True):
    "Notebook `src` as nbdev processes it for the docs (`FilterDefaults`); `links=False` leaves backticked names unlinked."
    import nbdev.showdoc
    from fastcore.nbio import read_nb
    from nbdev.processors import FilterDefaults, add_links
    class Procs(FilterDefaults):
        def base_procs(self): return [p for p in super().base_procs() if links or p is not add_links]
    nb, plain = read_nb(src), nbdev.showdoc.BasicMarkdownRenderer
    nbdev.showdoc.BasicMarkdownRenderer = _renderer() # what `show_doc` uses when no `renderer` is configured
    os.environ['IN_TEST'] = '1' # as nbdev.serve_drv does
    try: Procs()(nb)
    finally: nbdev.showdoc.BasicMarkdownRenderer = plain; del os.environ['IN_TEST']
    return nb

_re_attrs = re.compile(r'(\]\([^)\s]*\))\{[^}]*\}')               # Pandoc link attributes: [a](b){target="_blank"}
_re_source = re.compile(r'\[source\]\((?!https?://)[^)]*\)\n*')    # show_doc's link to code, with no repository URL set
_re_link = re.compile(r'\[([^\]]*)\]\(([^)\s]+)\)')
_re_showdoc_h = re.compile(r'^(#+) (\S+)$', re.MULTILINE)
_re_anchor = re.compile(r'^\(nbdev:([^)]+)\)=$', re.MULTILINE)

def unquarto_md(md:str)->str:
    "Markdown `md` without Pandoc link attributes and without show_doc's `[source]` link (no repository URL is set)."
    return _re_source.sub('', _re_attrs.sub(r'\1', md))

def fix_link(url:str, page:str, base:str, pages:dict, anchors:dict)->str|None:
    "`url`, written in folder `base` (relative to ROOT), as a link from `page`; None for a doc link with no target."
    u = urlsplit(url)
    if u.scheme or u.netloc or not u.path: return url
    frag = '#'+u.fragment if u.fragment else ''
    if u.path.startswith('/'): # nbdev's doc links are site-absolute; private names have no section to link to
        target = u.path.lstrip('/')
        if u.fragment and u.fragment not in anchors.get(target, ()): return None
    else:
        src = os.path.normpath(os.path.join(base, u.path))
        if src not in pages: return url
        target = pages[src]+'.html'
    return os.path.relpath(target, os.path.dirname(page) or '.') + frag

def fix_links(md:str, page:str, base:str, pages:dict, anchors:dict)->str:
    "Links of markdown `md` relative to `page`: doc links and links to the sources of pages (`nbs/00_layers.ipynb`)."
    def _sub(m):
        url = fix_link(m[2], page, base, pages, anchors)
        return m[1] if url is None else f'[{m[1]}]({url})'
    return _re_link.sub(_sub, md)

def _directives(src:str):
    "`(directives, code)` of a code cell: Quarto's `#| key: value` lines at the top, and the rest."
    lines, d = src.splitlines(), {}
    while lines and (m := re.match(r'#\|\s*([\w-]+)\s*:?\s*(.*)$', lines[0])): d[m[1]] = m[2].strip(); lines.pop(0)
    return d, '\n'.join(lines)

def _md_cell(src, attachments=None):
    "A markdown cell of `src`, with the `attachments` (pasted images) it refers to."
    return dict(cell_type='markdown', metadata={}, source=src, **({'attachments': attachments} if attachments else {}))

def _showdoc_md(md:str)->str:
    "show_doc markdown as page content: no leading rule, and a target that conf.py turns into the anchor nbdev's doc links use (`#lsuv_init`)."
    md = re.sub(r'^\s*---\s*\n', '', md)
    return _re_showdoc_h.sub(lambda m: f'(nbdev:{m[2].lower()})=\n{m[1]} {m[2]}', md, count=1)

def plain_cells(nb, page:str)->list:
    "Cells of processed notebook `nb` as plain Jupyter cells: front matter as a title, `show_doc` output as markdown."
    import yaml
    cells = []
    for c in nb.cells:
        src = c.get('source')
        if src is None or '<!-- WARNING: THIS FILE WAS AUTOGENERATED' in src: continue # removed by nbdev: hidden, exported
        if c.cell_type == 'raw' and src.startswith('---'):
            fm = yaml.safe_load(src.strip().strip('-')) or {}
            cells.append(_md_cell(f"# {fm.get('title', page)}\n\n> {fm.get('description', '')}".rstrip('> \n')))
        elif c.cell_type == 'markdown': cells.append(_md_cell(unquarto_md(src), c.get('attachments')))
        elif c.cell_type == 'code':
            d, code = _directives(src)
            if d.get('include') == 'false': continue
            outs = [o for o in c.get('outputs', []) if d.get('output') != 'false']
            if d.get('output') == 'asis': # show_doc: its markdown output becomes page content
                cells += [_md_cell(unquarto_md(_showdoc_md(''.join(o['data']['text/markdown']))))
                          for o in outs if 'text/markdown' in o.get('data', {})]
                continue
            tags = ['remove-input'] if d.get('echo') == 'false' else []
            cells.append(dict(cell_type='code', execution_count=None, metadata={'tags': tags} if tags else {},
                              outputs=[dict(o) for o in outs], source=code))
    return cells

def plain_nb(cells:list):
    "A valid nbformat 4 notebook of `cells` (python kernel, no Quarto metadata)."
    import nbformat
    nb = nbformat.from_dict(dict(nbformat=4, nbformat_minor=5, cells=cells, metadata=dict(
        kernelspec=dict(display_name='Python 3', language='python', name='python3'), language_info=dict(name='python'))))
    for i,c in enumerate(nb.cells): c['id'] = f'c{i}'
    nbformat.validate(nb)
    return nb

def doc_sources()->dict:
    "Every page's source (relative to ROOT) -> its page name, as nbdev names pages (`nbs/00_layers.ipynb` -> `layers`)."
    from nbdev.config import nbpath2html
    nbs = sorted(p for p in NBS.rglob('*.ipynb') if not any(o.startswith(('.', '_')) for o in p.relative_to(NBS).parts))
    res = {str(p.relative_to(ROOT)): str(nbpath2html(p.relative_to(NBS)).with_suffix('')) for p in nbs}
    return res | {k:v for k,v in MD_PAGES.items() if (ROOT/k).exists()}

CONF = '''\
# Written by tools/build_docs.py; edit it there.
project, author, release = 'mylib', 'mylib developers', {version!r}
extensions = ['myst_nb', 'sphinx-mathjax-offline'] # MathJax from the package, not from a CDN
myst_enable_extensions = ['dollarmath', 'amsmath']
myst_all_links_external = True   # links are already relative .html paths (tests/test_site.py checks they resolve)
nb_execution_mode = 'off'           # the notebooks' saved outputs are the docs
nb_merge_streams = True
html_theme = 'pydata_sphinx_theme'
html_title = 'mylib'
html_copy_source = html_show_sourcelink = False
html_theme_options = dict(navigation_with_keys=False, show_toc_level=2, secondary_sidebar_items=['page-toc'],
                          footer_start=['copyright'], footer_end=[])
html_sidebars = {{'**': []}}

def _nbdev_ids(app, doctree):
    "Make `lsuv_init` the first id of the section a `(nbdev:lsuv_init)=` target names: the anchor nbdev's doc links use."
    from docutils import nodes
    for sec in doctree.findall(nodes.section):
        sec['ids'][:0] = [n[len('nbdev:'):] for n in sec['names'] if n.startswith('nbdev:')]

def setup(app): app.connect('doctree-read', _nbdev_ids)
'''

def write_sources(src_dir:Path)->list:
    "Write the Sphinx project (conf.py, plain notebooks, markdown pages) into `src_dir`; return the page names."
    import nbformat, mylib
    from nbdev.doclinks import NbdevLookup
    if src_dir.exists(): shutil.rmtree(src_dir)
    src_dir.mkdir(parents=True)
    (src_dir/'conf.py').write_text(CONF.format(version=mylib.__version__))
    pages, content = doc_sources(), {}
    for src, page in pages.items(): # markdown pages get their names linked as nbdev links the notebooks'
        if src.endswith('.md'): content[src] = [_md_cell(NbdevLookup().linkify((ROOT/src).read_text()))]
        else: content[src] = plain_cells(process_nb(ROOT/src), page)
    anchors = {pages[src]+'.html': {a for c in cells if c['cell_type'] == 'markdown' for a in _re_anchor.findall(c['source'])}
               for src, cells in content.items()}
    for src, cells in content.items():
        page, base = pages[src], '.' if ROOT/src == README_NB else os.path.dirname(src) # index.ipynb's links are README's
        for c in cells:
            if c['cell_type'] == 'markdown': c['source'] = fix_links(c['source'], page, base, pages, anchors)
        if page == 'index':
            others = '\n'.join(p for p in pages.values() if p != 'index')
            cells.append(_md_cell(f'```{{toctree}}\n:hidden:\n:maxdepth: 2\n\n{others}\n```'))
        dst = (src_dir/page).with_suffix(Path(src).suffix)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.endswith('.md'): dst.write_text(cells[0]['source'])
        else: nbformat.write(plain_nb(cells), dst)
    return list(pages.values())

# What the pages load: the tex-chtml component, the TeX extensions it autoloads, its fonts, and its menu's parts
MATHJAX_KEEP = ('tex-chtml.js', 'input/tex/', 'output/chtml/', 'ui/', 'a11y/', 'adaptors/')

def prune_mathjax(mj:Path):
    "Remove the MathJax files (of the ~20 MB sphinx-mathjax-offline copies) that `mathjax_path` never loads."
    for p in sorted(mj.rglob('*'), reverse=True): # children first
        rel = p.relative_to(mj).as_posix()
        if p.is_file() and not rel.startswith(MATHJAX_KEEP): p.unlink()
        elif p.is_dir() and not any(p.iterdir()): p.rmdir()

def build_site(out:Path=ROOT/'_site', work:Path=ROOT/'_proc'/'sphinx')->Path:
    "Build the docs site into `out` (static HTML, opens from file://), using `work` for the Sphinx project."
    from sphinx.cmd.build import build_main
    out, work = Path(out).resolve(), Path(work).resolve()
    write_sources(work/'src')
    html = work/'html' # not `out` itself: myst-nb writes a jupyter_execute/ folder beside the output folder
    shutil.rmtree(html, ignore_errors=True)
    # -W: a Sphinx warning (a page outside the toctree, a bad directive) fails the build; tests/ check the links
    rc = build_main(['-b', 'html', '-q', '-W', '--keep-going', '-d', str(work/'doctrees'), str(work/'src'), str(html)])
    if rc: raise SystemExit(f'sphinx-build failed ({rc})')
    prune_mathjax(html/'_static'/'mathjax')
    shutil.rmtree(html/'_sources', ignore_errors=True) # empty: html_copy_source is off
    (html/'.nojekyll').touch() # static hosts that run Jekyll would drop _static/
    if out.exists(): shutil.rmtree(out)
    shutil.move(html, out)
    return out

def write_readme(check=False):
    "Rewrite README.md from nbs/index.ipynb; with `check`, only exit 1 (printing the diff) if it is stale."
    new, old = readme_md(), (ROOT/'README.md').read_text()
    if not check:
        (ROOT/'README.md').write_text(new)
        return print('wrote README.md')
    if new == old: return print('README.md is up to date with nbs/index.ipynb')
    sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), new.splitlines(True), 'README.md', 'from nbs/index.ipynb'))
    sys.exit('README.md is stale: run `python tools/build_docs.py --readme`')

def readme_md()->str:
    "README.md's text: nbs/index.ipynb processed by nbdev (names unlinked) and exported by nbconvert to markdown."
    from nbconvert import MarkdownExporter
    cells = plain_cells(process_nb(README_NB, links=False), 'README')
    md,_ = MarkdownExporter().from_notebook_node(plain_nb(cells))
    return re.sub(r'\n{3,}', '\n\n', md).strip() + '\n'

@call_parse
def main(readme:bool=False, # rewrite README.md from nbs/index.ipynb instead of building the site
         check:bool=False, # with `--readme`: change nothing; exit 1, showing the diff, if README.md is stale
         out:str=str(ROOT/'_site'), # folder for the site (replaced)
         work:str=str(ROOT/'_proc'/'sphinx'), # folder for the intermediate Sphinx project (replaced)
        ):
    "Build mylib's docs site into `out`, or with `readme` rewrite (or `check`) README.md."
    os.chdir(ROOT) # nbdev reads its settings from pyproject.toml here
    if readme: return write_readme(check)
    t = time.time()
    site = build_site(Path(out), Path(work))
    print(f'built {site/"index.html"} in {time.time()-t:.1f} s')
