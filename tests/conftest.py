import subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT/'tools'/'build_docs.py'

def run_build(*args, timeout=600):
    "Run `python tools/build_docs.py *args` from the repository root; the completed process, output captured."
    return subprocess.run([sys.executable, str(BUILD), *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)

@pytest.fixture(scope='session')
def site(tmp_path_factory):
    "The docs site, built once per session into a temporary folder with the README's command."
    tmp = tmp_path_factory.mktemp('docs')
    r = run_build('--out', tmp/'site', '--work', tmp/'work')
    assert r.returncode == 0, f'build failed:\n{r.stdout}\n{r.stderr}'
    return tmp/'site'
