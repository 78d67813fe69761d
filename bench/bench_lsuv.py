"""Benchmark `mylib.layers.lsuv_init` against the reference notebook's sequential LSUV and the `lsuv` package.

    python bench/bench_lsuv.py            # full run, writes bench/RESULTS.md
    python bench/bench_lsuv.py --quick    # smoke run: the two smallest models, 1 round

Phase 1 (timing): per model, in rounds of [forward, orthogonal pre-init, reference, lsuv, mylib] (5 rounds, at most 3
for the depth-80 MLP and xresnet50), each LSUV run on a fresh deep copy of the SAME orthogonally pre-initialised model
and the same batch; medians over the rounds, multiples and ratios as medians of per-round ratios.
Phase 2 (probes): one more run of each implementation with a forward pre-hook on the top model counting forward
passes and a background thread sampling RSS every ~1 ms; its weights are compared with the reference's.
Phase 2 runs last, as it pins glibc's mmap threshold (see `malloc_release`), which slows allocation-heavy code.
Phase 3: `rai_init` vs `kaiming_normal_`, and orthogonal pre-init vs one forward pass, on xresnet50 (--quick: xresnet18).
`mylib` is imported, not copied: the script measures whichever `mylib.layers.lsuv_init` is installed.
"""
import argparse, copy, ctypes, datetime, gc, hashlib, importlib.metadata, math, os, platform, shlex, statistics
import subprocess, sys, threading, time, warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from reference_lsuv import covered_layers, orthogonal_preinit, lsuv_reference

with warnings.catch_warnings(): # fastai.layers calls the deprecated `torch.jit.script` at import (torch>=2.10)
    warnings.filterwarnings('ignore', message='`torch.jit.script` is deprecated', category=FutureWarning)
    import fastai
    from fastai.vision.models.xresnet import xresnet18, xresnet50
import lsuv
import mylib, mylib.layers

try: import psutil
except ImportError: psutil = None

SEED = 0
TOL, N_ITER = 0.01, 10 # the reference's defaults, passed to all three implementations
MiB = 2**20


# ---------------------------------------------------------------- models

def test_model() -> nn.Module:
    "The reference notebook's test model."
    return nn.Sequential(nn.Conv2d(3,10,3), nn.ReLU(), nn.Conv2d(10,10,1, bias=False), nn.LeakyReLU(),
                         nn.Flatten(), nn.Linear(640,10))

def mlp(depth: int, width: int = 256) -> nn.Module:
    "`depth` Linear(width, width) layers with a ReLU between consecutive ones."
    layers = []
    for i in range(depth): layers += [nn.Linear(width, width)] + ([nn.ReLU()] if i < depth-1 else [])
    return nn.Sequential(*layers)

def transformer() -> nn.Module:
    "A 6-layer `nn.TransformerEncoder`, d_model 256, 8 heads, batch first (default feed-forward width 2048)."
    return nn.TransformerEncoder(nn.TransformerEncoderLayer(256, 8, batch_first=True), 6)

@dataclass
class Spec:
    "A benchmark case: a model builder, its batch shape, and how many repeats a full run does."
    name: str
    build: callable
    batch: tuple
    repeats: int | None = None # None: the --repeats value; else at most this many
    quick: bool = False         # part of the --quick smoke run

SPECS = [
    Spec('reference test model', test_model, (50,3,10,10), quick=True),
    Spec('MLP depth 10', partial(mlp, 10), (512,256), quick=True),
    Spec('MLP depth 20', partial(mlp, 20), (512,256)),
    Spec('MLP depth 40', partial(mlp, 40), (512,256)),
    Spec('MLP depth 80', partial(mlp, 80), (512,256), repeats=3),
    Spec('xresnet18', xresnet18, (16,3,64,64)),
    Spec('xresnet50', xresnet50, (16,3,64,64), repeats=3),
    Spec('TransformerEncoder x6', transformer, (32,64,256)),
]


# ---------------------------------------------------------------- the three implementations

def run_reference(m, xb): return lsuv_reference(m, xb, tol=TOL, n_iter=N_ITER, ortho=False)

def run_lsuv(m, xb):
    "lsuv 0.3.0: std only (no mean/bias step); at most `max_attempts+1` corrections per layer, hence N_ITER-1."
    return lsuv.lsuv_with_singlebatch(m, xb, needed_std=1.0, std_tol=TOL, max_attempts=N_ITER-1,
                                      do_orthonorm=False, verbose=False, device=torch.device('cpu'))

def run_mylib(m, xb): return mylib.layers.lsuv_init(m, xb, tol=TOL, n_iter=N_ITER, ortho=False)
def run_mylib_default(m, xb): return mylib.layers.lsuv_init(m, xb, tol=TOL, n_iter=N_ITER)

IMPLS = {'reference': run_reference, 'lsuv': run_lsuv, 'mylib': run_mylib}


# ---------------------------------------------------------------- measuring

def seed_everything(seed: int = SEED):
    "Seed Python's, NumPy's and torch's global RNGs."
    import random, numpy as np
    random.seed(seed); np.random.seed(seed); torch.manual_seed(seed)

def forward(m, xb):
    "One inference forward pass: eval mode, no grad."
    m.eval()
    with torch.no_grad(): return m(xb)

def timed(fn, *args, collect: bool = True) -> float:
    "Seconds one call of `fn(*args)` takes (after a garbage collection, not timed, if `collect`)."
    if collect: gc.collect()
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0

def fresh_ortho(model) -> nn.Module:
    "A deep copy of `model` with the orthogonal pre-init applied, always drawn from seed `SEED`."
    m = copy.deepcopy(model)
    torch.manual_seed(SEED)
    return orthogonal_preinit(m)

def error_text(e: BaseException) -> str:
    "'error: <type>: <first line of the message>'."
    return f"error: {type(e).__name__}: {(str(e).splitlines() or [''])[0]}"

def quiet(fn, *args):
    "Call `fn(*args)` with warnings silenced (the probe run records them)."
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return fn(*args)

_PAGE = os.sysconf('SC_PAGE_SIZE')

def rss() -> int:
    "This process's resident set size in bytes (psutil if installed, else /proc/self/statm)."
    if psutil is not None: return psutil.Process().memory_info().rss
    with open('/proc/self/statm') as f: return int(f.read().split()[1]) * _PAGE

class PeakRSS:
    "Context manager: `.delta` is the peak RSS during the block minus the RSS at entry, sampled every ~1 ms."
    def __init__(self, interval: float = 1e-3): self.interval, self.delta = interval, 0
    def _sample(self):
        while not self._stop.is_set():
            self._peak = max(self._peak, rss())
            time.sleep(self.interval)
    def __enter__(self):
        self.base = self._peak = rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self
    def __exit__(self, *exc):
        self._peak = max(self._peak, rss())
        self._stop.set(); self._thread.join()
        self.delta = max(0, self._peak - self.base)

_libc = None
def malloc_release(fixed_mmap_threshold: bool = False):
    "Return freed heap memory to the OS (glibc `malloc_trim`); optionally pin glibc's mmap threshold at 128 KiB."
    global _libc
    try:
        _libc = _libc or ctypes.CDLL('libc.so.6')
        # M_MMAP_THRESHOLD = -3: a fixed threshold stops glibc from raising it dynamically, so large tensors stay
        # mmapped and are unmapped when freed, and RSS follows live memory
        if fixed_mmap_threshold: _libc.mallopt(-3, 128*1024)
        _libc.malloc_trim(0)
    except (OSError, AttributeError): pass

def count_forwards(m) -> list:
    "Register a forward pre-hook on `m` counting its calls; return the one-element list holding the count."
    n = [0]
    def _count(mod, args): n[0] += 1
    m.register_forward_pre_hook(_count)
    return n

def probe(fn, m, xb) -> dict:
    "Run `fn(m, xb)` once, recording forward passes, peak RSS increase, warnings, and the model or an error."
    n = count_forwards(m)
    gc.collect(); malloc_release()
    out = {}
    with warnings.catch_warnings(record=True) as ws, PeakRSS() as mem:
        warnings.simplefilter('always')
        try: fn(m, xb); out['model'] = m
        except Exception as e: out['error'] = error_text(e)
    out.update(forwards=n[0], mem=mem.delta, warnings=[f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in ws])
    return out

def max_rel_diff(m, ref, biases: bool = False) -> float:
    "Max over weight (or bias) tensors of max|w - w_ref| / max|w_ref| (the absolute difference where w_ref is all zero)."
    worst = 0.
    for (n,p),(_,q) in zip(m.named_parameters(), ref.named_parameters()):
        if n.endswith('bias') != biases: continue
        d, s = (p.detach() - q.detach()).abs().max().item(), q.detach().abs().max().item()
        worst = max(worst, d/s if s > 0 else d)
    return worst


# ---------------------------------------------------------------- the benchmark

@dataclass
class Case:
    "One model's inputs and everything measured on it."
    spec: Spec
    model: nn.Module
    xb: torch.Tensor
    pre: nn.Module
    repeats: int
    fwd: list = field(default_factory=list)   # per round: the times of a few forward passes
    ortho: list = field(default_factory=list) # per round: the orthogonal pre-init time
    load: list = field(default_factory=list)  # per round: the 1-minute load average after it
    times: dict = field(default_factory=lambda: {k: [] for k in IMPLS}) # per round; None once it failed
    errors: dict = field(default_factory=dict)
    probes: dict = field(default_factory=dict)
    fwd_mem: int = 0

def make_case(spec: Spec, repeats: int) -> Case:
    "Build the model (random weights) and batch from seed `SEED`, and its orthogonally pre-initialised copy."
    seed_everything()
    model = spec.build()
    xb = torch.randn(spec.batch, generator=torch.Generator().manual_seed(SEED))
    return Case(spec, model, xb, fresh_ortho(model), min(repeats, spec.repeats or repeats))

def forward_times(m, xb, budget: float = 0.3) -> list:
    "Times of back-to-back inference forward passes of `m` on `xb` (about `budget` seconds of them, 3 to 30)."
    t = timed(forward, m, xb)
    return [t] + [timed(forward, m, xb, collect=False) for _ in range(min(29, max(2, math.ceil(budget/max(t, 1e-6)) - 1)))]

def time_ortho(model) -> float:
    "Seconds `orthogonal_preinit` takes on a deep copy of `model` (the copy and the seeding are not timed)."
    m = copy.deepcopy(model)
    torch.manual_seed(SEED)
    return timed(orthogonal_preinit, m)

def time_case(c: Case):
    "Phase 1: `c.repeats` rounds of forward, orthogonal pre-init, then each LSUV implementation in turn."
    fm = copy.deepcopy(c.pre)
    forward(fm, c.xb) # warm-up
    for r in range(c.repeats):
        c.fwd.append(forward_times(fm, c.xb))
        c.ortho.append(time_ortho(c.model))
        for name, fn in IMPLS.items(): c.times[name].append(None if name in c.errors else time_impl(c, name, fn))
        c.load.append(os.getloadavg()[0])
        print(f"  round {r+1}/{c.repeats}: forward {med(c.fwd[-1])*1e3:.3g} ms, " +
              ", ".join(f"{k} {v[-1]:.3f}s" for k,v in c.times.items() if v[-1] is not None), flush=True)

def time_impl(c: Case, name: str, fn) -> float | None:
    "Seconds `fn` takes on a fresh copy of the pre-initialised model; None (and the error noted) if it raises."
    try: return timed(quiet, fn, copy.deepcopy(c.pre), c.xb)
    except Exception as e: c.errors[name] = error_text(e)

def forward_mem(c: Case) -> int:
    "Peak RSS increase of one inference forward pass on a fresh copy of the pre-initialised model."
    m = copy.deepcopy(c.pre); m.eval()
    gc.collect(); malloc_release()
    with PeakRSS() as mem: forward(m, c.xb)
    return mem.delta

def probe_case(c: Case):
    "Phase 2: peak memory of one forward (median of 3); forward passes, peak memory and final weights of each implementation."
    c.fwd_mem = statistics.median(forward_mem(c) for _ in range(3))
    for name, fn in IMPLS.items(): c.probes[name] = probe(fn, copy.deepcopy(c.pre), c.xb)

def init_timings(repeats: int, arch=xresnet50) -> dict:
    "Phase 3: median seconds of `rai_init`, `kaiming_normal_` on each covered weight, `orthogonal_preinit`, and one forward."
    seed_everything()
    m, xb = arch(), torch.randn(16,3,64,64, generator=torch.Generator().manual_seed(SEED))
    layers = covered_layers(m)
    def kaiming(m):
        for l in layers: nn.init.kaiming_normal_(l.weight)
    def mylib_ortho(m):
        for l in layers: mylib.layers._orthogonal_(l.weight)
    fns = {'rai_init': mylib.layers.rai_init, 'kaiming_normal_': kaiming, 'orthogonal pre-init': orthogonal_preinit,
           "mylib's orthogonal pre-init": mylib_ortho, 'mylib lsuv_init (default: ortho=True)': lambda m: quiet(run_mylib_default, m, xb),
           'one forward pass': lambda m: forward(m, xb)}
    for f in fns.values(): f(m) # warm-up
    ts = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items(): ts[k].append(timed(f, m))
    return {'arch': arch.__name__, 'layers': len(layers), 'repeats': repeats, **{k: statistics.median(v) for k, v in ts.items()}}


# ---------------------------------------------------------------- reporting

def md_table(headers: list, rows: list) -> str:
    "A Markdown table."
    lines = ['| ' + ' | '.join(headers) + ' |', '|' + '|'.join('---' for _ in headers) + '|']
    return '\n'.join(lines + ['| ' + ' | '.join(str(x) for x in r) + ' |' for r in rows])

def med(xs):
    "Median of the values in `xs` that are not None."
    return statistics.median([x for x in xs if x is not None])

def per_round(a: list, b: list) -> float:
    "Median over rounds of a[r]/b[r]: each time is compared with one taken moments before it (noise-robust)."
    return med([x/y for x,y in zip(a, b) if x is not None and y is not None])

def forwards(c: Case) -> list: return [med(f) for f in c.fwd]

def impl_time(c: Case, name: str) -> str:
    "An implementation's time as a multiple of one forward pass (median per round), with its median seconds; or its error."
    if name in c.errors: return c.errors[name]
    return f"{per_round(c.times[name], forwards(c)):.1f}× ({med(c.times[name]):.3g} s)"

def ratio(c: Case, a: str, b: str) -> str:
    "Median over rounds of the time of `a` over the time of `b`."
    if a in c.errors or b in c.errors: return 'n/a'
    return f"{per_round(c.times[a], c.times[b]):.2f}"

def time_table(cases: list) -> str:
    "Table 1: forward time, orthogonal pre-init and each implementation as multiples of one forward pass."
    rows = [[c.spec.name, 'x'.join(map(str, c.spec.batch)), len(covered_layers(c.model)), c.repeats,
             f"{med(sum(c.fwd, []))*1e3:.3g}", f"{per_round(c.ortho, forwards(c)):.2f}× ({med(c.ortho)*1e3:.3g} ms)",
             *(impl_time(c, k) for k in IMPLS), ratio(c, 'reference', 'mylib'), ratio(c, 'lsuv', 'mylib')] for c in cases]
    return md_table(['model', 'batch', 'layers', 'rounds', 'forward (ms)', 'ortho pre-init',
                     'reference', 'lsuv', 'mylib', 'reference/mylib', 'lsuv/mylib'], rows)

def probe_cell(p: dict, fmt) -> str:
    "`fmt(p)`, or the probe's error."
    return p['error'] if 'error' in p else fmt(p)

def fwd_table(cases: list) -> str:
    "Table 2: forward passes used and max relative weight difference vs the reference."
    rows = []
    for c in cases:
        ref = c.probes['reference'].get('model')
        diff = lambda k: ('n/a (reference failed)' if ref is None else probe_cell(c.probes[k], lambda p: f"{max_rel_diff(p['model'], ref):.1e} / {max_rel_diff(p['model'], ref, biases=True):.1e}"))
        n = lambda p: f"{p['forwards']} (then failed)" if 'error' in p else p['forwards']
        rows.append([c.spec.name, *(n(c.probes[k]) for k in IMPLS), diff('lsuv'), diff('mylib')])
    return md_table(['model', *(f"{k} forwards" for k in IMPLS), 'lsuv max Δ vs reference (weights / biases)', 'mylib max Δ vs reference (weights / biases)'], rows)

def mem_table(cases: list) -> str:
    "Table 3: peak RSS increase of each implementation and of one inference forward pass."
    def cell(c, k): return probe_cell(c.probes[k], lambda p: f"{p['mem']/MiB:.1f} ({p['mem']/max(c.fwd_mem, 1):.1f}×)")
    params = lambda m: sum(p.numel()*p.element_size() for p in m.parameters())
    rows = [[c.spec.name, f"{params(c.model)/MiB:.1f}", f"{c.fwd_mem/MiB:.1f}", *(cell(c, k) for k in IMPLS)] for c in cases]
    return md_table(['model', 'parameters (MiB)', 'forward (MiB)', *(f"{k} MiB (×forward)" for k in IMPLS)], rows)

def rounds_table(cases: list) -> str:
    "Table 4: every timed round, with the machine's load, to show the noise behind the medians."
    secs = lambda ts: ' '.join('-' if t is None else f"{t:.3g}" for t in ts)
    rows = []
    for c in cases:
        rows += [[c.spec.name, 'load average (1 min) after the round', ' '.join(f"{l:.2f}" for l in c.load)],
                 [c.spec.name, 'forward (median of the round)', secs(forwards(c))]]
        rows += [[c.spec.name, k, secs(c.times[k])] for k in IMPLS]
    return md_table(['model', 'what', 'per round (s)'], rows)

def init_table(t: dict) -> str:
    "Table 5: rai_init vs kaiming_normal_, and orthogonal pre-init vs one forward pass."
    f, ours = t['one forward pass'], t["mylib's orthogonal pre-init"]
    rows = [[k, f"{t[k]*1e3:.3g}", f"{t[k]/f:.2f}×"] for k in ('rai_init', 'kaiming_normal_', 'orthogonal pre-init',
            "mylib's orthogonal pre-init", 'mylib lsuv_init (default: ortho=True)', 'one forward pass')]
    return (md_table([f"{t['arch']}, all covered layers", 'median (ms)', '× one forward pass'], rows) +
            f"\n\nrai_init / kaiming_normal_ = {t['rai_init']/t['kaiming_normal_']:.2f}; "
            f"orthogonal pre-init (nn.init.orthogonal_) / mylib's = {t['orthogonal pre-init']/ours:.2f}; "
            f"orthogonal pre-init / one forward pass = {t['orthogonal pre-init']/f:.2f} "
            f"({t['layers']} covered layers, interleaved rounds: {t['repeats']}, batch 16x3x64x64).")

def notes(cases: list) -> str:
    "Errors and (deduplicated) warnings of the probe runs."
    out = []
    for c in cases:
        for k in IMPLS:
            if k in c.errors: out.append(f"- {c.spec.name} / {k}: {c.errors[k]}")
            ws = c.probes[k]['warnings']
            for w in dict.fromkeys(ws): out.append(f"- {c.spec.name} / {k}: {ws.count(w)}× warning `{w[:200]}`")
    return '\n'.join(out) or '- none'


# ---------------------------------------------------------------- environment

def cpu_model() -> str:
    "The CPU model name from /proc/cpuinfo."
    try: return next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except (OSError, StopIteration): return platform.processor() or 'unknown'

def mylib_source() -> str:
    "Which mylib was measured: git commit of its checkout, whether layers.py differs from it, and a hash of layers.py."
    src = Path(mylib.layers.__file__)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:12]
    try:
        git = lambda *a: subprocess.run(['git', '-C', str(src.parent), *a], capture_output=True, text=True, check=True).stdout.strip()
        dirty = ' (uncommitted changes)' if git('status', '--porcelain', '--', src.name) else ''
        return f"mylib/{src.name} at commit {git('rev-parse', '--short', 'HEAD')}{dirty}, sha256 {digest}"
    except (OSError, subprocess.CalledProcessError): return f"mylib/{src.name}, sha256 {digest}"

def environment() -> str:
    "Command, date, machine and versions, as Markdown bullets."
    v = importlib.metadata.version
    return '\n'.join([
        f"- command: `{shlex.join(['python', *sys.argv])}`",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- machine: {cpu_model()}, {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), "
        f"torch.get_num_threads() = {torch.get_num_threads()}, load average at start {os.getloadavg()[0]:.2f}",
        f"- versions: python {platform.python_version()}, torch {torch.__version__}, fastai {fastai.__version__}, "
        f"lsuv {v('lsuv')}, mylib {mylib.__version__}",
        f"- mylib measured: {mylib_source()}",
        f"- memory sampling: {'psutil' if psutil else '/proc/self/statm'} every ~1 ms"])


# ---------------------------------------------------------------- main

METHOD = """\
Each LSUV implementation starts from the same weights: the model (random weights, seed {seed}) is deep-copied,
`nn.init.orthogonal_` is applied to every Linear/Conv/ConvTranspose weight and biases are zeroed (seed {seed}), and
each run deep-copies that pre-initialised model and skips its own orthogonal init (reference: `ortho=False`,
lsuv: `do_orthonorm=False`, mylib: `ortho=False`). All use tol={tol}, at most {n_iter} corrections per layer
(lsuv: `std_tol={tol}, max_attempts={n_iter_1}`; it allows max_attempts+1 corrections). lsuv 0.3.0 rescales the
std only (no bias/mean step), so its weights are expected to differ from the reference's. The layers column counts
Linear/Conv layers; on the transformer mylib also rescales each attention's q, k and v projections (4 units per
attention, its out_proj among them), which the reference and lsuv do not reach, so there it does more work than they do.
Timing runs in interleaved rounds (a few forward passes, ortho pre-init, reference, lsuv, mylib; repeated). Seconds
are medians over rounds. A multiple such as 12.0× is the median over rounds of the implementation's time over that
round's median inference forward pass (eval mode, `torch.no_grad()`), and reference/mylib, lsuv/mylib are medians
of per-round ratios, so each time is compared with one taken seconds before it on this shared, noisy machine.

Forward passes are counted with a forward pre-hook on the top model. Peak memory is the peak RSS increase during
one call, sampled every ~1 ms in a background thread after `malloc_trim` and with glibc's mmap threshold pinned
(probe runs after all timings; one run per implementation, the forward's median of 3; differences of a few MiB are
noise). The parameters column is the size of the model's weights, for scale.
Max Δ is, per parameter tensor, max|w - w_reference| / max|w_reference|, maximised over the weight tensors and,
separately, over the bias tensors (all parameters, so BatchNorm/LayerNorm ones too; they are never changed)."""

def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true', help='smoke run: the two smallest models, 1 repeat, init timings on xresnet18')
    p.add_argument('--repeats', type=int, default=5, help='interleaved rounds per model (slow models: at most 3)')
    p.add_argument('--out', default=str(HERE/'RESULTS.md'), help='where to write the Markdown report')
    p.add_argument('--models', default='', help='only the models whose name contains this text')
    p.add_argument('--threads', type=int, default=0, help="torch.set_num_threads(THREADS) first (0: torch's default)")
    return p.parse_args()

def main():
    args = parse_args()
    if args.threads: torch.set_num_threads(args.threads)
    gc.freeze() # move the objects of the imports (fastai: millions) out of the collector's way: gc.collect() in ms
    repeats = 1 if args.quick else args.repeats
    specs = [s for s in SPECS if (s.quick or not args.quick) and args.models.lower() in s.name.lower()]
    env = environment()
    print(env, flush=True)
    cases = []
    for s in specs:
        print(f"timing {s.name}", flush=True)
        c = make_case(s, repeats); time_case(c); cases.append(c)
    arch = xresnet18 if args.quick else xresnet50 # --quick: the smaller model, to keep the smoke run short
    print(f"timing rai_init / kaiming_normal_ / orthogonal pre-init on {arch.__name__}", flush=True)
    inits = init_timings(1 if args.quick else 7, arch)
    # only now: with the mmap threshold pinned every large tensor is a fresh mmap, which would slow the timings
    malloc_release(fixed_mmap_threshold=True)
    for c in cases:
        print(f"probing {c.spec.name}", flush=True)
        probe_case(c)
    report = '\n\n'.join([
        '# LSUV benchmark', env, '## Method', METHOD.format(seed=SEED, tol=TOL, n_iter=N_ITER, n_iter_1=N_ITER-1),
        '## Time (median; × one inference forward pass)', time_table(cases),
        '## Forward passes and agreement with the reference', fwd_table(cases),
        '## Peak memory (RSS increase during one call)', mem_table(cases),
        f"## rai_init vs kaiming_normal_; orthogonal pre-init vs forward ({arch.__name__})", init_table(inits),
        '## Errors and warnings (probe runs)', notes(cases),
        '## All timed rounds (s)', rounds_table(cases)]) + '\n'
    print('\n' + report)
    Path(args.out).write_text(report)
    print(f"wrote {args.out}")

if __name__ == '__main__': main()
