"""Initialisation under `torch.distributed` (issue 7): 2 processes, gloo backend, loopback.

Each rank gets its own batch (of a different size) and its own global seed. One run of two worker processes (this
file, run as a script) performs every scenario and saves each rank's weights; the tests compare the ranks with each
other and with one process's result on the concatenated batches. One spawn for the module, since each process spends
most of its few seconds importing torch and fastai. `pytest tests/test_distributed.py -s` prints the differences."""
import os, re, signal, socket, subprocess, sys, time, traceback, zlib
from datetime import timedelta
from pathlib import Path
import pytest, torch
import torch.distributed as dist
from torch import nn

if not (dist.is_available() and dist.is_gloo_available()): pytest.skip('torch.distributed with gloo is not available', allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
WORLD = 2
SIZES = (48, 80)   # rank r's batch size: unequal, so that averaging the ranks' means would be wrong
G0 = 7             # rank r draws the orthogonal pre-init from a generator seeded G0+r: only a broadcast makes them agree
SEED = 100         # rank r builds (and randomly initialises) its model under torch.manual_seed(SEED+r)
TOL = 1e-5         # relative difference allowed against one process on the concatenated batch
SPAWN_TIMEOUT = 120 # seconds for a whole 2-process run; a collective gives up after 60 s

# ---- models and batches, the same in the workers and in the test process

class Twice(nn.Module):
    "An MLP whose middle layer is called twice (shared weights), so `lsuv_init` takes its sequential fallback."
    def __init__(self):
        super().__init__()
        self.inp, self.mid, self.out = nn.Linear(10, 32), nn.Linear(32, 32), nn.Linear(32, 4)
    def forward(self, x): return self.out(self.mid(self.mid(self.inp(x).relu()).relu()).relu())

def mlp(): return nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4))
def cnn(): return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2),
                                nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4))

MODELS = dict(mlp=mlp, cnn=cnn, twice=Twice, ddp=cnn, group=mlp, own_group=mlp, nosync=mlp)
SYNCED = ['mlp', 'cnn', 'twice', 'ddp', 'group'] # lsuv_init scenarios whose ranks must agree with each other
LOCAL = ['nosync', 'own_group']                   # lsuv_init scenarios where each rank is on its own
RANDOM = ['default_init', 'rai_init', 'lambda_init']

def batch(name, rank):
    "Rank `rank`'s batch in scenario `name`; off-centre (mean 3, std 2), so that the first layer's outputs are too."
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()) + rank)
    return torch.randn(SIZES[rank], *((3, 12, 12) if MODELS[name] is cnn else (10,)), generator=g)*2 + 3

def he_zero(w, b): nn.init.kaiming_normal_(w); nn.init.zeros_(b)

def random_init(name, m, **kw):
    "Initialise `m` with the random initialiser `name` (`lambda_init`: He normal weights, zero biases)."
    from mylib.layers import default_init, rai_init, lambda_init
    if name == 'lambda_init': return lambda_init(m, he_zero, **kw)
    return dict(default_init=default_init, rai_init=rai_init)[name](m, **kw)

def state(m): "A copy of `m`'s state dict."; return {k: v.detach().clone() for k,v in m.state_dict().items()}

# ---- the worker: `python tests/test_distributed.py RANK OUT_DIR`, with MASTER_ADDR, MASTER_PORT, WORLD_SIZE set

def _lsuv(name, rank, groups):
    "Rank `rank`'s weights after `lsuv_init` in scenario `name` (and, for 'ddp', after one DDP training step too)."
    from mylib.layers import lsuv_init
    torch.manual_seed(SEED + rank)
    m, gen = MODELS[name](), torch.Generator().manual_seed(G0 + rank)
    kw = dict(group=groups['world']) if name == 'group' else dict(group=groups['own']) if name == 'own_group' else \
         dict(sync=False) if name == 'nosync' else {}
    if name != 'ddp': return {name: state(lsuv_init(m, batch(name, rank), generator=gen, **kw))}
    ddp = nn.parallel.DistributedDataParallel(m) # copies rank 0's (random) weights to every rank, before the init
    lsuv_init(ddp, batch(name, rank), generator=gen)
    res = {name: state(m)}
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1) # DDP still works after the init: one step keeps the ranks equal
    ddp(batch(name, rank)).pow(2).mean().backward()
    opt.step()
    res['ddp_step'] = {k: p.detach().clone() for k,p in m.named_parameters()}
    return res

def _fastai(rank):
    "Weights when fastai's training loop starts, with `LSUVCallback` on every rank; a string saying why if skipped."
    try: from mylib.callback import LSUVCallback
    except ImportError as e: return f'skip: mylib.callback.LSUVCallback is not there ({e})'
    from fastai.learner import Learner
    from fastai.data.core import DataLoaders
    from fastai.callback.core import Callback, CancelFitException
    class Grab(Callback):
        "Save the weights as the first batch starts (after LSUVCallback's init), then stop."
        order = LSUVCallback.order + 1
        def before_batch(self): self.learn.grabbed = state(self.model); raise CancelFitException()
    torch.manual_seed(SEED + rank)
    x = batch('mlp', rank)
    ds = list(zip(x, x[:, :4]))
    learn = Learner(DataLoaders.from_dsets(ds, ds, bs=16), mlp(), loss_func=nn.MSELoss(), cbs=[LSUVCallback(), Grab()])
    with learn.no_logging(): learn.fit(1, 1e-3)
    return learn.grabbed

def _refused(rank):
    "`{'type', 'msg'}` of the error each rank gets when rank 1's batch has a NaN and rank 0's is fine."
    from mylib.layers import lsuv_init
    x = batch('mlp', rank)
    if rank == 1: x[0, 0] = float('nan')
    try: lsuv_init(mlp(), x)
    except Exception as e: return dict(type=type(e).__name__, msg=str(e))
    return dict(type=None, msg='')

def _worker(rank, out):
    "Run every scenario as rank `rank` of 2 and save its results to `out`/rank{rank}.pt."
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=WORLD, timeout=timedelta(seconds=60))
    try:
        res = {}
        # every rank creates every group, in the same order (a rank gets a placeholder for a group it is not in)
        world, own = dist.new_group(list(range(WORLD))), [dist.new_group([r]) for r in range(WORLD)][rank]
        def attempt(name, f):
            try: res.update(f())
            except Exception: res[name] = 'error: ' + traceback.format_exc()
        for name in SYNCED + LOCAL: attempt(name, lambda: _lsuv(name, rank, dict(world=world, own=own)))
        attempt('refused', lambda: {'refused': _refused(rank)})
        for name in RANDOM:
            for key,kw in ((name, {}), (name+'_nosync', dict(sync=False))):
                def f(name=name, key=key, kw=kw):
                    torch.manual_seed(SEED + rank)
                    return {key: state(random_init(name, mlp(), **kw))}
                attempt(key, f)
        attempt('fastai', lambda: {'fastai': _fastai(rank)})
        torch.save(res, Path(out)/f'rank{rank}.pt')
    finally: dist.destroy_process_group()

# ---- the test process

def free_port():
    "A TCP port on 127.0.0.1 that was free a moment ago."
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]

def _env(**kw):
    env = {**os.environ, 'OMP_NUM_THREADS': '1', **kw}
    if sys.platform == 'linux': env.setdefault('GLOO_SOCKET_IFNAME', 'lo') # gloo's pairs on loopback too
    env['PYTHONPATH'] = os.pathsep.join([str(ROOT)] + ([env['PYTHONPATH']] if env.get('PYTHONPATH') else []))
    return env

def _stop(procs, group=False):
    "Terminate, then kill, each process of `procs` still running; with `group`, its whole process group (torchrun's workers)."
    hit = set()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = [p for p in procs if p.poll() is None]
        for p in alive:
            hit.add(p)
            try: os.killpg(p.pid, sig) if group else p.send_signal(sig)
            except ProcessLookupError: pass
        for p in alive:
            try: p.wait(5)
            except subprocess.TimeoutExpired: pass
    for p in hit if group else (): # workers that outlived their launcher
        try: os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError): pass

@pytest.fixture(scope='module')
def results(tmp_path_factory):
    "`[rank 0's results, rank 1's]`: one dict per rank, scenario name -> state dict (or an error/skip string)."
    out = tmp_path_factory.mktemp('dist')
    env = _env(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()), WORLD_SIZE=str(WORLD))
    logs, procs, t0 = [out/f'rank{r}.log' for r in range(WORLD)], [], time.time()
    try:
        for r in range(WORLD):
            with open(logs[r], 'w') as f:
                procs.append(subprocess.Popen([sys.executable, __file__, str(r), str(out)], env=env, cwd=ROOT,
                                              stdout=f, stderr=subprocess.STDOUT))
        for p in procs: p.wait(max(1, SPAWN_TIMEOUT - (time.time() - t0)))
    except subprocess.TimeoutExpired: pytest.fail(f'the workers took over {SPAWN_TIMEOUT} s:\n' + _logs(logs))
    finally: _stop(procs)
    print(f'\n2 gloo workers ran every scenario in {time.time()-t0:.1f} s')
    if any(p.returncode for p in procs): pytest.fail(f'a worker failed (exit codes {[p.returncode for p in procs]}):\n' + _logs(logs))
    return [torch.load(out/f'rank{r}.pt') for r in range(WORLD)]

def _logs(logs): return '\n'.join(f'--- {l.name}\n{l.read_text()[-4000:]}' for l in logs if l.exists())

def _get(results, name):
    "Each rank's result in scenario `name`; fail with the workers' tracebacks if it raised."
    rs = [r.get(name, 'error: no result (an earlier error in its scenario?)') for r in results]
    errs = [f'rank {i}: {o}' for i,o in enumerate(rs) if isinstance(o, str)]
    if errs: pytest.fail('\n'.join(errs))
    return rs

def bitwise_equal(a, b):
    "Whether state dicts `a` and `b` hold the same bits."
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

def assert_same(a, b, msg):
    "Fail with `msg` and the largest relative difference unless `a` and `b` are bitwise equal (a plain message, no dict dumps)."
    if not bitwise_equal(a, b): pytest.fail(f'{msg} (max relative difference {rel_diff(a, b):.2e})')

def assert_differ(a, b, msg):
    "Fail with `msg` if `a` and `b` are bitwise equal."
    if bitwise_equal(a, b): pytest.fail(msg)

def rel_diff(a, b):
    "Over the floating-point tensors of state dicts `a` and `b`: the largest max|a-b|/max|b|."
    return max(((a[k]-b[k]).abs().max()/b[k].abs().max().clamp_min(1e-30)).item() for k in b if b[k].is_floating_point())

def one_process(name, rank=None):
    "`lsuv_init` in this process on the ranks' concatenated batches, drawing rank 0's orthogonal pre-init; or on rank `rank`'s batch, with its draws."
    from mylib.layers import lsuv_init
    xb = torch.cat([batch(name, r) for r in range(WORLD)]) if rank is None else batch(name, rank)
    return state(lsuv_init(MODELS[name](), xb, generator=torch.Generator().manual_seed(G0 + (rank or 0))))

@pytest.mark.parametrize('name', SYNCED)
def test_lsuv_ranks_agree_with_one_process(results, name):
    "After `lsuv_init`, the ranks hold the same bits, and what one process gets on all their batches at once."
    r0, r1 = _get(results, name)
    assert_same(r1, r0, f'{name}: the ranks differ after lsuv_init')
    ref = one_process(name)
    d = rel_diff(r0, ref)
    print(f'\n{name:9}: max relative difference to one process on the concatenated batch: {d:.1e}')
    assert d <= TOL, f'{name}: {d:.2e} from one process on the concatenated batch'
    assert rel_diff(one_process(name, 0), ref) > 1e-3 # the check has teeth: rank 0's batch alone gives other weights

def test_ddp_trains_after_init(results):
    "One DDP training step after the init keeps the ranks bitwise equal."
    r0, r1 = _get(results, 'ddp_step')
    assert_same(r1, r0, 'the ranks differ after a DDP step')
    assert_differ(r0, {k: v for k,v in _get(results, 'ddp')[0].items() if k in r0}, 'the step did not move the weights')

@pytest.mark.parametrize('name', LOCAL)
def test_lsuv_per_rank(results, name):
    "With `sync=False`, or a group of one rank each, every rank is on its own: its own batch, its own pre-init."
    rs = _get(results, name)
    assert_differ(*rs, f'{name}: the ranks agree though each should have used its own batch')
    d = max(rel_diff(r, one_process(name, i)) for i,r in enumerate(rs))
    print(f'\n{name:9}: max relative difference to one process on the rank\'s own batch: {d:.1e}')
    assert d <= TOL

@pytest.mark.parametrize('name', RANDOM)
def test_random_inits_agree(results, name):
    "Drawn under different seeds, the ranks end with rank 0's draw; with `sync=False` they keep their own."
    r0, r1 = _get(results, name)
    assert_same(r1, r0, f'{name}: the ranks differ')
    torch.manual_seed(SEED)
    assert_same(r0, state(random_init(name, mlp())), f"{name}: the ranks agree, but not on rank 0's draw")
    assert_differ(*_get(results, name + '_nosync'), f'{name}(sync=False): the ranks agree')

def test_fastai_callback(results):
    "`LSUVCallback`, run by fastai's training loop on every rank, leaves the ranks equal."
    skip = results[0].get('fastai')
    if isinstance(skip, str) and skip.startswith('skip: '): pytest.skip(skip[6:])
    r0, r1 = _get(results, 'fastai')
    assert_same(r1, r0, 'the ranks differ after LSUVCallback')

@pytest.mark.skipif(sys.platform == 'win32', reason='stops the launcher by its process group (POSIX)')
def test_torchrun_example(tmp_path):
    "`torchrun --nproc_per_node 2 examples/lsuv_ddp.py` runs, and its ranks print the same parameter checksums."
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', str(WORLD), '--master_addr', '127.0.0.1',
           '--master_port', str(free_port()), str(ROOT/'examples'/'lsuv_ddp.py')]
    log, t0 = tmp_path/'torchrun.log', time.time()
    with open(log, 'w') as f: # a session of its own, so that the launcher and its workers can be stopped together
        p = subprocess.Popen(cmd, env=_env(), cwd=tmp_path, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    try: p.wait(SPAWN_TIMEOUT)
    except subprocess.TimeoutExpired: pytest.fail(f'torchrun took over {SPAWN_TIMEOUT} s:\n{log.read_text()[-4000:]}')
    finally: _stop([p], group=True)
    txt = log.read_text()
    print(f'\ntorchrun example: {time.time()-t0:.1f} s')
    assert p.returncode == 0, txt[-4000:]
    sums = {}
    # not anchored to lines: torchrun's workers share stdout, and a line of one may land inside a line of the other
    for rank,stage,h in re.findall(r'rank (\d+): (.+?) +params sha1=([0-9a-f]{12})', txt): sums.setdefault(stage, {})[int(rank)] = h
    assert {'after lsuv_init', 'after training'} <= sums.keys(), txt[-4000:]
    for stage,hs in sums.items():
        assert sorted(hs) == list(range(WORLD)), f'{stage}: not every rank printed\n{txt[-4000:]}'
        if stage.startswith('sync=False'): assert len(set(hs.values())) == WORLD, f'{stage}: {hs}'
        else: assert len(set(hs.values())) == 1, f'{stage}: the ranks differ: {hs}'

if __name__ == '__main__': _worker(int(sys.argv[1]), sys.argv[2])


def test_a_batch_refused_on_one_rank_stops_every_rank(results):
    "Rank 1's NaN batch raises there, and rank 0 raises too instead of waiting for rank 1 in a collective (the later scenarios then still run)."
    r0, r1 = _get(results, 'refused')
    assert r1['type'] == 'ValueError' and 'NaN or inf' in r1['msg'], r1
    assert r0['type'] == 'RuntimeError' and 'other rank(s)' in r0['msg'], r0
