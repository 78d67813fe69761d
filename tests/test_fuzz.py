"""Property-based fuzzing of the initialisers with hypothesis, on random stacks of Linear / Conv1-3d / ConvTranspose1-3d
/ BatchNorm / activation layers with random depth, width, groups, bias, batch and spatial sizes.

`lsuv_init` either succeeds, with every layer it does not warn about within `tol` on a re-measured forward pass and
nothing non-finite anywhere, or raises `ValueError` for a batch it cannot use (a constant output, a one-element
output) and leaves the model bitwise as it was. `default_init` and `rai_init` never produce NaN or inf. All three
keep the parameter objects with their shapes and dtypes, the BatchNorm running statistics, every module's mode, and
leave no hook. Derandomised, so CI sees the same examples every run: `MYLIB_FUZZ_EXAMPLES` examples per test (300 by
default; set it higher for a long local run)."""
import math, os, re, warnings
from dataclasses import dataclass
import pytest, torch
from torch import nn
from hypothesis import given, example, settings, event, HealthCheck, strategies as st
from mylib.layers import lsuv_init, default_init, rai_init, init_layers, init_types, LSUVWarning

N = int(os.environ.get('MYLIB_FUZZ_EXAMPLES', 300))
fuzz = settings(derandomize=True, database=None, max_examples=N, deadline=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ACTS = ['nn.ReLU()', 'nn.LeakyReLU(0.1)', 'nn.GELU()', 'nn.Tanh()', 'nn.Sigmoid()', 'nn.SiLU()']
SLACK = 1e-4 # float32 rounding between lsuv_init's own statistics and a fresh forward pass with the rescaled weights

@pytest.fixture(autouse=True, scope='module')
def one_thread():
    "One intra-op thread: on these tiny tensors two threads ran the fuzz 5x slower on a busy 2-core machine (spin-waits)."
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

@dataclass
class Case:
    """A model as a list of module expressions (readable when hypothesis prints a failing example), its input and seed.
    `'@i'` in `mods` is module `i` called again (shared weights)."""
    mods: list
    shape: tuple
    seed: int
    dtype: str = 'float32'
    scale: float = 1.
    shift: float = 0.

    def build(self):
        "`(model in train mode, batch)`, the BatchNorm layers with random running statistics, all from `seed`."
        torch.manual_seed(self.seed)
        ms = []
        for s in self.mods: ms.append(ms[int(s[1:])] if s.startswith('@') else eval(s, {'nn': nn})) # '@i': module i again
        m = nn.Sequential(*ms).to(getattr(torch, self.dtype))
        with torch.no_grad():
            for o in m.modules():
                if isinstance(o, nn.modules.batchnorm._BatchNorm):
                    o.running_mean.normal_(); o.running_var.uniform_(0.5, 2); o.num_batches_tracked += 1
                    o.weight.uniform_(0.5, 2); o.bias.normal_()
        xb = (torch.randn(self.shape)*self.scale + self.shift).to(getattr(torch, self.dtype))
        return m.train(), xb

def _width(draw, c):
    "The number of output units of a layer after `c`: 1 to 16, and `c` more often than by chance (for shared layers)."
    return c if draw(st.integers(0, 3)) == 0 else draw(st.integers(1, 16))

def _conv(draw, d, c, size):
    "Draw a (transposed) conv of dimension `d` on `c` channels of spatial `size`: `(expression, out channels, out size)`."
    out, transposed = _width(draw, c), draw(st.booleans())
    groups = draw(st.sampled_from([g for g in range(1, 17) if c % g == 0 and out % g == 0]))
    k, s, p, dil = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(0, 1)), draw(st.integers(1, 2))
    if max(size) > 6: k, s, p, dil = 1, 1, 0, 1 # keeps transposed convs from growing the input without bound
    def new(L):
        return (L-1)*s - 2*p + dil*(k-1) + 1 if transposed else (L + 2*p - dil*(k-1) - 1)//s + 1
    if min(map(new, size)) < 1: p, dil, k = 0, 1, 1 # too small for this kernel: a 1x1 one always fits
    kind = f"nn.{'ConvTranspose' if transposed else 'Conv'}{d}d"
    bias = draw(st.booleans())
    return f"{kind}({c}, {out}, {k}, stride={s}, padding={p}, dilation={dil}, groups={groups}, bias={bias})", out, [new(L) for L in size]

@st.composite
def cases(draw):
    "A random stack of 1-6 linear or conv layers of one dimension, with BatchNorm and activations between, and a batch."
    d = draw(st.integers(0, 3)) # 0: linear layers, else the conv dimension
    batch, c = draw(st.integers(1, 8)), draw(st.integers(1, 16))
    size = [draw(st.integers(1, 4 if d == 3 else 6)) for _ in range(d)]
    unbatched = draw(st.integers(0, 7)) == 0 and d < 3 # an unbatched sample: no BatchNorm, no Flatten
    extra = [] if d or unbatched else [draw(st.integers(1, 3))]*draw(st.integers(0, 1)) # a linear on (batch, t, features)
    shape = ((c,) if unbatched else (batch, *extra, c)) if d == 0 else ((c, *size) if unbatched else (batch, c, *size))
    mods = []
    for _ in range(draw(st.integers(1, 6))):
        i, old = len(mods), size
        if d == 0:
            out = _width(draw, c)
            mods.append(f"nn.Linear({c}, {out}, bias={draw(st.booleans())})")
        else:
            s, out, size = _conv(draw, d, c, size)
            mods.append(s)
        if out == c and size == old and draw(st.integers(0, 3)) == 0: # the same layer called again: shared weights
            if draw(st.booleans()): mods.append(draw(st.sampled_from(ACTS)))
            mods.append(f"@{i}")
        c = out
        if not unbatched and not extra and draw(st.booleans()): mods.append(f"nn.BatchNorm{max(d, 1)}d({c})")
        if draw(st.booleans()): mods.append(draw(st.sampled_from(ACTS)))
    if d and not unbatched and draw(st.booleans()):
        mods += ['nn.Flatten()', f"nn.Linear({c*math.prod(size)}, {draw(st.integers(1, 16))}, bias={draw(st.booleans())})"]
    return Case(mods, shape, draw(st.integers(0, 2**31-1)), draw(st.sampled_from(['float32', 'float32', 'float64'])),
                draw(st.sampled_from([1., 1., 0.01, 100.])), draw(st.sampled_from([0., 0., 3.])))

def state(m):
    "What an initialiser must keep: tensors (bitwise), parameter objects, shapes, dtypes and flags, modes, hooks, fast path."
    return dict(tensors={k: v.clone() for k,v in m.state_dict().items()},
                params=[(n, p, p.shape, p.dtype, p.device, p.requires_grad) for n,p in m.named_parameters()],
                buffers={k: b.clone() for k,b in m.named_buffers()},
                modes={n: o.training for n,o in m.named_modules()},
                hooks={n: (dict(o._forward_hooks), dict(o._forward_pre_hooks), dict(o._backward_hooks))
                       for n,o in m.named_modules()},
                global_hooks=(len(nn.modules.module._global_forward_hooks),
                              len(nn.modules.module._global_forward_pre_hooks)),
                fastpath=torch.backends.mha.get_fastpath_enabled())

def check_same(a, b, params_too):
    "`state`s `a` and `b` agree: buffers always bitwise, parameter values only if `params_too`."
    if params_too:
        assert a['tensors'].keys() == b['tensors'].keys()
        for k,v in a['tensors'].items(): assert torch.equal(v, b['tensors'][k]), f"{k} changed"
    assert a['buffers'].keys() == b['buffers'].keys()
    for k,v in a['buffers'].items(): assert torch.equal(v, b['buffers'][k]), f"buffer {k} changed"
    assert len(a['params']) == len(b['params'])
    for (n,p,*r),(n2,p2,*r2) in zip(a['params'], b['params']): assert n == n2 and p is p2 and r == r2, f"{n}: {r} -> {r2}"
    for k in ('modes', 'hooks', 'global_hooks', 'fastpath'): assert a[k] == b[k], f"{k}: {a[k]} -> {b[k]}"

def check_finite(m):
    for n,t in m.state_dict().items(): assert t.isfinite().all(), f"{n} has NaN or inf"

def out_stats(m, xb):
    "`{layer: (mean, std)}` of each covered layer's output on `xb` in eval mode, over all its elements (sample std)."
    outs, modes = {}, [(o, o.training) for o in m.modules()]
    hs = [l.register_forward_hook(lambda l,i,o: outs.setdefault(l, []).append(o.flatten().double()))
          for l in m.modules() if isinstance(l, init_types)]
    try:
        with torch.no_grad(): m.eval()(xb)
    finally:
        for h in hs: h.remove()
        for o,t in modes: o.training = t
    return {l: (torch.cat(v).mean().item(), torch.cat(v).std().item()) for l,v in outs.items()}

def conv(d, c, out, k=1, s=1, p=0, dil=1, g=1, bias=True, t=False):
    return f"nn.{'ConvTranspose' if t else 'Conv'}{d}d({c}, {out}, {k}, stride={s}, padding={p}, dilation={dil}, groups={g}, bias={bias})"

# Examples the fuzz found, kept so that every run tries them: the first two layers' outputs read padding only, so each
# is its bias, constant per channel; the last two have a layer behind a dead one (its input all zeros).
found = [Case([conv(3, 6, 4, 2, p=1, dil=2)], (1, 6, 1, 1, 3), 0),
         Case([conv(1, 1, 1, s=2, p=1)], (3, 1, 1), 0),
         Case([conv(2, 11, 8), conv(2, 8, 4, g=2, bias=False), conv(2, 4, 4, 2, g=2), conv(2, 4, 4, g=2, bias=False), '@3',
               'nn.BatchNorm2d(4)', 'nn.ReLU()', conv(2, 4, 1)], (1, 11, 3, 4), 214),
         Case([conv(1, 2, 1, bias=False), 'nn.ReLU()', conv(1, 1, 2, 2, t=True), conv(1, 2, 2, s=2, bias=False)], (2, 2), 0)]

def examples(f):
    for c in found: f = example(case=c, tol=0.01, n_iter=10, ortho=False)(f)
    return f

@fuzz
@examples
@given(case=cases(), tol=st.sampled_from([0.01, 0.01, 0.1, 1e-3]), n_iter=st.sampled_from([10, 10, 3, 1]),
       ortho=st.booleans())
def test_lsuv_init(case, tol, n_iter, ortho):
    m, xb = case.build()
    names, before = dict((l,n) for n,l in init_layers(m)), state(m)
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter('always')
        try: assert lsuv_init(m, xb, tol=tol, n_iter=n_iter, ortho=ortho, generator=torch.Generator().manual_seed(case.seed)) is m
        except ValueError as e: # a batch it cannot use (a constant or one-element output): the layer named, nothing changed
            assert any(f"layer '{n}'" in str(e) for n in names.values()), f"no layer named in: {e}"
            check_same(before, state(m), params_too=True)
            event('ValueError')
            return
    check_same(before, state(m), params_too=False)
    check_finite(m)
    if any(s.startswith('@') for s in case.mods): event('a shared layer')
    event('warned' if any(issubclass(w.category, LSUVWarning) for w in ws) else 'all within tol')
    warned = {n for w in ws if issubclass(w.category, LSUVWarning) for n in re.findall(r"layer '([^']*)'", str(w.message))}
    for l,(mean,std) in out_stats(m, xb).items():
        if names[l] in warned: continue
        assert abs(std-1) <= tol+SLACK, f"layer '{names[l]}' not warned about, but its std is {std} (tol={tol})"
        assert l.bias is None or abs(mean) <= tol+SLACK, f"layer '{names[l]}' not warned about, but its mean is {mean} (tol={tol})"

@fuzz
@given(case=cases(), normal=st.booleans(), with_xb=st.booleans())
def test_default_and_rai_init(case, normal, with_xb):
    for init in (lambda m, xb: default_init(m, normal=normal, xb=xb if with_xb else None, generator=torch.Generator().manual_seed(1)),
                 lambda m, xb: rai_init(m, generator=torch.Generator().manual_seed(2))):
        m, xb = case.build()
        before = state(m)
        assert init(m, xb) is m
        check_same(before, state(m), params_too=False)
        check_finite(m)
