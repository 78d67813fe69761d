"README.md is generated from nbs/index.ipynb, and its commands are the ones CI runs."
import re
from conftest import ROOT, run_build

def test_readme_up_to_date():
    r = run_build('--readme', '--check')
    assert r.returncode == 0, f'{r.stdout}\n{r.stderr}'

def test_readme_commands_are_ci_commands():
    "The install, test, main-job and docs commands are lines of README.md, and .ci/run runs each (a line starts with it)."
    readme, ci = (ROOT/'README.md').read_text(), (ROOT/'.ci'/'run').read_text().splitlines()
    for cmd in ['pip install -e ".[dev]"', 'nbdev-test && pytest tests', 'mylib-init', 'python tools/build_docs.py']:
        assert re.search(rf'^{re.escape(cmd)}(\s+#.*)?$', readme, re.MULTILINE), f'README.md lacks the line `{cmd}`'
        assert any(l == cmd or l.startswith(cmd+' ') for l in ci), f'.ci/run does not run `{cmd}`'
