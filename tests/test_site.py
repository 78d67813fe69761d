"""The docs site as built by `python tools/build_docs.py`: its files, its links, and the layers page and search as
headless Chromium renders them."""
import os, re, shutil, subprocess, tempfile
from pathlib import Path
from urllib.parse import urlsplit, unquote
import pytest
from bs4 import BeautifulSoup
from fastcore.docments import docments
from conftest import ROOT

INITS = ['lambda_init', 'lsuv_init', 'default_init', 'rai_init']
HIDDEN = ['nbdev_export', 'from nbdev.showdoc import', 'default_exp', '#| export', '#| hide', 'from fastcore.test import']
SHOT = ROOT/'_screenshots'/'layers.png'

def norm(s):
    "`s` as plain text to compare: no backticks, Sphinx's curly quotes straight, whitespace single spaces."
    return ' '.join(s.replace('`', '').translate(str.maketrans("‘’“”", "''\"\"")).split())

def pages(site): return sorted(site.rglob('*.html'))
def soup(path): return BeautifulSoup(Path(path).read_text(), 'html.parser')

def test_pages(site):
    names = {p.relative_to(site).as_posix() for p in pages(site)}
    assert {'index.html', 'layers.html', 'benchmarks.html', 'search.html'} <= names
    assert (site/'searchindex.js').exists()
    assert soup(site/'index.html').find('h1').get_text().strip('#¶ ') == 'mylib'

def test_no_cdn(site):
    "Every script, style sheet and image comes from the site itself, so it works offline and from file://."
    for p in pages(site):
        for tag, attr in [('script', 'src'), ('link', 'href'), ('img', 'src')]:
            for t in soup(p).find_all(tag):
                url = t.get(attr)
                if tag == 'link' and 'stylesheet' not in t.get('rel', []) and 'preload' not in t.get('rel', []): continue
                assert not url or not urlsplit(url).scheme and not url.startswith('//'), f'{p.name} loads {url}'

def test_links_resolve(site):
    "Every link inside the site reaches a file, and an element with the link's fragment as id."
    ids = {}
    for p in pages(site):
        for a in soup(p).find_all('a', href=True):
            u = urlsplit(a['href'])
            if u.scheme or u.netloc or a['href'].startswith('mailto:'): continue
            target = (p.parent/unquote(u.path)).resolve() if u.path else p
            assert target.exists(), f'{p.name}: broken link {a["href"]}'
            if u.fragment and target.suffix == '.html':
                if target not in ids: ids[target] = {t['id'] for t in soup(target).find_all(id=True)}
                assert u.fragment in ids[target], f'{p.name}: no #{u.fragment} in {target.name}'

def test_names_link_to_their_docs(site):
    "Backticked names in the prose of the home page link to their section of the layers page."
    hrefs = {a['href'] for a in soup(site/'index.html').find_all('a', href=True)}
    for nm in INITS: assert f'layers.html#{nm}' in hrefs

# ---- the browser test ----
def _find_chromium():
    for nm in ('chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'):
        if shutil.which(nm): return shutil.which(nm)

def _install_chromium():
    "Try to install Debian's `chromium`; return why it could not be, or None."
    if not shutil.which('apt-get'): return 'no apt-get'
    if os.geteuid() != 0: return 'not root, so apt-get cannot install it'
    env = {**os.environ, 'DEBIAN_FRONTEND': 'noninteractive'}
    try: r = subprocess.run('apt-get update && apt-get install -y chromium', shell=True, capture_output=True, text=True,
                            env=env, timeout=1200)
    except subprocess.TimeoutExpired: return 'apt-get install chromium timed out'
    if r.returncode: return f'apt-get install chromium failed: {(r.stderr or r.stdout).strip()[-300:]}'

@pytest.fixture(scope='session')
def chromium():
    "Path of a headless Chromium, installed with apt-get if missing; skips the tests that need it otherwise."
    exe = _find_chromium()
    if not exe:
        why = _install_chromium()
        exe = _find_chromium()
        if not exe:
            reason = f'Chromium is not installed and could not be: {why or "apt-get ran, no chromium found"}'
            print(reason)
            pytest.skip(reason)
    return exe

def browse(chromium, url, *args):
    "Run headless Chromium on `url` with the flags in DESIGN.md, giving its JavaScript 10 s of virtual time."
    with tempfile.TemporaryDirectory() as profile:
        cmd = [chromium, '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
               '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage',
               f'--user-data-dir={profile}', '--window-size=1280,1600', '--virtual-time-budget=10000', *args, url]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, f'chromium failed ({r.returncode}): {r.stderr[-2000:]}'
    return r.stdout

def _heading(page, nm):
    "The h2/h3 whose text is `nm` (without its '#' permalink) and whose section has the id nbdev's links use."
    sec = page.find('section', id=nm)
    assert sec is not None, f'no section #{nm}'
    h = sec.find(['h2', 'h3', 'h4'])
    assert h.get_text().strip('#¶ ') == nm, h.get_text()
    return sec

def test_layers_page_in_browser(site, chromium):
    layers = (site/'layers.html').as_uri()
    SHOT.parent.mkdir(exist_ok=True)
    SHOT.unlink(missing_ok=True)
    browse(chromium, layers, f'--screenshot={SHOT}')
    assert SHOT.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and SHOT.stat().st_size > 20_000, 'blank screenshot?'
    page = BeautifulSoup(browse(chromium, layers, '--dump-dom'), 'html.parser')
    main = page.find('main')
    import mylib.layers
    for nm in INITS:
        sec = _heading(page, nm)
        rows = {tr.find('td').get_text(strip=True): norm(tr.get_text())
                for tr in sec.find('table').find_all('tr') if tr.find('td')}
        for p, doc in docments(getattr(mylib.layers, nm)).items():
            if p == 'return': continue
            assert p in rows, f'{nm}: parameter {p} is not in the table'
            assert doc and norm(doc) in rows[p], f'{nm}: {p} is not documented'
        assert norm(getattr(mylib.layers, nm).__doc__) in norm(sec.get_text()), f'{nm}: docstring missing'
    imgs = [i for i in main.find_all('img') if i.get('src', '').endswith('.png')]
    assert imgs, 'no figure on the layers page'
    for i in imgs: assert (site/unquote(i['src'])).exists(), i['src']
    text = main.get_text()
    for h in HIDDEN: assert h not in text, f'hidden code leaked: {h}'
    assert page.find(class_='MathJax') or page.find('mjx-container'), 'MathJax did not typeset'

def test_search_finds_lsuv_init(site, chromium):
    page = BeautifulSoup(browse(chromium, (site/'search.html').as_uri()+'?q=lsuv_init', '--dump-dom'), 'html.parser')
    results = page.find(id='search-results')
    assert results is not None, 'no search results'
    hrefs = [a['href'] for a in results.find_all('a', href=True)]
    assert 'layers.html#lsuv_init' in hrefs, hrefs
