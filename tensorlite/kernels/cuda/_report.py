"""What NVIDIA's compilers make of every CUDA twin: registers, spills, memory, float64, occupancy.

`report(arch)` compiles each `@cuda.jit` kernel of tensorlite/kernels/cuda/ for float32 and float64,
with the argument types the tests launch it with (launch_signatures.json, see _launches.py),
through NVVM to PTX (`numba.cuda.compile_ptx`) and assembles the PTX with `ptxas -arch=<arch> -v`.
No GPU is needed; the compilers come from the `nvidia-cuda-nvcc-cu12` wheel (`pip install
.[gpu-check]`), which ships libNVVM and ptxas of one CUDA release, so the PTX version NVVM emits is
one ptxas accepts.  Numba looks for libNVVM by a versioned file name (libnvvm.so.4) that the wheel
does not have, and would otherwise find a system CUDA's, of another release: the compiling
process is given a CUDA_HOME that links to the wheel's files.

The compiling runs in a subprocess without the simulator (NUMBA_ENABLE_CUDASIM replaces numba.cuda
in the process that sets it, and the tests set it), so `report` works from any process.

One record per kernel and dtype:

- registers, spill_bytes (spill stores + spill loads), shared_bytes, local_bytes (the stack frame,
  per thread, in local memory), as ptxas prints them;
- f64_instructions: PTX instructions that compute in float64 or convert to or from it (an opcode
  with .f64 other than a load, store or move); f64_reason: why, where float64 is deliberate
  (F64_REASONS), else '';
- max_threads_per_block: the largest block those registers allow; threads_per_block: the block the
  launch wrapper uses on a GPU; occupancy: resident warps per SM over the SM's maximum, at that
  block (OCCUPANCY_FORMULA).
"""
import json
import math
import os
import re
import subprocess
import sys
import tempfile

# float64 inside a float32 kernel, on purpose.  Anything else found in a float32 kernel is a defect.
F64_REASONS = {
    'attention._softmax_rows_fwd': 'float64 row sum of the exponentials, as on the CPU',
    'attention._softmax_rows_bwd': 'float64 row sum of dp * p, as on the CPU',
    'conv._depthwise_bwd_weight': 'float64 shared-memory reduction of the weight gradient '
                                  '(a sum over the batch and every output position), as on the CPU',
    'norm._channel_shifted_sums': 'float64 shifted sums for the batch mean and variance, as on the CPU',
    'norm._channel_grad_sums': 'float64 sums of dy and dy * x_hat over a channel, as on the CPU',
    'norm._row_norm_fwd': 'float64 shifted sums for the row mean and variance, as on the CPU',
    'norm._row_norm_input_grad': 'float64 sums of dy and dy * x_hat over a row, as on the CPU',
    'norm._row_norm_param_grad': 'float64 partial sums of the weight and bias gradients over '
                                 'blocks of rows, as on the CPU',
}

# Per-SM limits of the architectures (CUDA C Programming Guide, "Technical Specifications per
# Compute Capability"; the occupancy calculator's allocation granularities).
ARCHS = {
    'sm_80': dict(regs_per_sm=65536, regs_per_block=65536, reg_unit=256, max_threads_per_block=1024,
                  max_warps_per_sm=64, max_blocks_per_sm=32, shared_per_sm=167936,
                  shared_reserved_per_block=1024),
    'sm_86': dict(regs_per_sm=65536, regs_per_block=65536, reg_unit=256, max_threads_per_block=1024,
                  max_warps_per_sm=48, max_blocks_per_sm=16, shared_per_sm=102400,
                  shared_reserved_per_block=1024),
    'sm_89': dict(regs_per_sm=65536, regs_per_block=65536, reg_unit=256, max_threads_per_block=1024,
                  max_warps_per_sm=48, max_blocks_per_sm=24, shared_per_sm=102400,
                  shared_reserved_per_block=1024),
    'sm_90': dict(regs_per_sm=65536, regs_per_block=65536, reg_unit=256, max_threads_per_block=1024,
                  max_warps_per_sm=64, max_blocks_per_sm=32, shared_per_sm=233472,
                  shared_reserved_per_block=1024),
}

OCCUPANCY_FORMULA = """\
regs_per_warp  = ceil(registers * 32 / reg_unit) * reg_unit     (reg_unit = 256)
max_threads_per_block = min(1024, floor(regs_per_block / regs_per_warp) * 32)
warps_per_block = ceil(threads_per_block / 32)
blocks/SM = min(max_blocks_per_sm,
                floor(max_warps_per_sm / warps_per_block),
                floor(floor(regs_per_sm / regs_per_warp) / warps_per_block),
                floor(shared_per_sm / (shared_bytes + shared_reserved_per_block)) if shared_bytes)
occupancy = blocks/SM * warps_per_block / max_warps_per_sm"""


def threads_per_block(kernel):
    """The block size the launch wrapper of `kernel` ('conv._vol2col') uses on a GPU (read from the
    modules in the compiling process, where they hold their GPU values)."""
    from . import _grid, conv, flow, norm
    assert not _grid.SIMULATED, 'under the simulator the modules hold the simulated block sizes'
    if kernel == 'conv._depthwise_bwd_weight':
        return conv.REDUCE_THREADS
    if kernel in ('norm._channel_shifted_sums', 'norm._channel_grad_sums', 'norm._row_norm_fwd',
                  'norm._row_norm_input_grad'):
        return norm.THREADS                             # a block per slab or row
    if kernel.startswith('flow.'):
        return flow.BLOCK[0] * flow.BLOCK[1]
    return _grid.GPU_THREADS


def limits(registers, shared_bytes, threads, arch):
    """(max_threads_per_block, occupancy at `threads` per block), by OCCUPANCY_FORMULA."""
    a = ARCHS[arch]
    regs_per_warp = max(1, math.ceil(registers * 32 / a['reg_unit'])) * a['reg_unit']
    max_threads = min(a['max_threads_per_block'], a['regs_per_block'] // regs_per_warp * 32)
    warps = math.ceil(threads / 32)
    blocks = min(a['max_blocks_per_sm'], a['max_warps_per_sm'] // warps,
                 a['regs_per_sm'] // regs_per_warp // warps)
    if shared_bytes:
        blocks = min(blocks, a['shared_per_sm'] // (shared_bytes + a['shared_reserved_per_block']))
    return max_threads, round(blocks * warps / a['max_warps_per_sm'], 3)


def signature_dtype(signature):
    """The float dtype of a recorded signature: that of its first floating-point array."""
    for t in signature:
        if isinstance(t, list) and t[1].startswith('float'):
            return t[1]
    return None


def signature_for(signatures, dtype):
    """(signature, recorded?) for `dtype`: the recorded one, else the recorded one of the other
    float dtype with every float type changed to `dtype` (a kernel the tests launch in one dtype)."""
    for s in signatures:
        if signature_dtype(s) == dtype:
            return s, True
    other = signatures[0]
    swap = lambda t: dtype if isinstance(t, str) and t.startswith('float') else t
    return [[t[0], swap(t[1]), t[2], t[3]] if isinstance(t, list) else swap(t) for t in other], False


_F64 = re.compile(r'^\s*(?:@%?!?\w+\s+)?([a-z][\w.]*)')


def count_f64(ptx):
    """PTX instructions computing in float64 or converting to or from it."""
    n = 0
    for line in ptx.splitlines():
        m = _F64.match(line)
        if not m or '.f64' not in m.group(1):
            continue
        op = m.group(1).split('.')[0]
        if op not in ('ld', 'st', 'mov'):
            n += 1
    return n


def parse_ptxas(text):
    """registers, spill_bytes, shared_bytes, local_bytes from `ptxas -v` output (one entry)."""
    num = lambda pattern: sum(int(v) for v in re.findall(pattern, text))
    return dict(registers=num(r'Used (\d+) registers'),
                spill_bytes=num(r'(\d+) bytes spill stores') + num(r'(\d+) bytes spill loads'),
                shared_bytes=num(r'(\d+) bytes smem'),
                local_bytes=num(r'(\d+) bytes stack frame') + num(r'(\d+) bytes lmem'))


def toolkit():
    """(CUDA_HOME for Numba, ptxas path) from the nvidia-cuda-nvcc-cu12 wheel."""
    try:
        import nvidia.cuda_nvcc
    except ImportError:
        raise RuntimeError("NVIDIA's compilers are not installed: pip install 'tensorlite[gpu-check]' "
                           "(or pip install -e '.[gpu-check]' in a checkout)") from None
    root = list(nvidia.cuda_nvcc.__path__)[0]
    home = os.path.join(tempfile.gettempdir(), f'tensorlite-cuda-home-{os.getuid()}')
    os.makedirs(os.path.join(home, 'nvvm', 'lib64'), exist_ok=True)
    links = {os.path.join(home, 'nvvm', 'lib64', 'libnvvm.so.4'):
                 os.path.join(root, 'nvvm', 'lib64', 'libnvvm.so'),
             os.path.join(home, 'nvvm', 'libdevice'): os.path.join(root, 'nvvm', 'libdevice')}
    for link, target in links.items():
        if os.path.realpath(link) != os.path.realpath(target):
            tmp = f'{link}.{os.getpid()}'
            os.symlink(target, tmp)
            os.replace(tmp, link)               # atomic: reports started together agree
    return home, os.path.join(root, 'bin', 'ptxas')


def report(arch='sm_80', dtypes=('float32', 'float64'), timeout=600):
    """{'arch': arch, 'kernels': [record, ...]}: every CUDA twin compiled for `arch` in `dtypes`
    (see the module docstring for the record)."""
    if arch not in ARCHS:
        raise ValueError(f'arch {arch!r}: one of {sorted(ARCHS)}')
    home, ptxas = toolkit()
    env = dict(os.environ, CUDA_HOME=home)
    env.pop('NUMBA_ENABLE_CUDASIM', None)
    env.pop('TENSORLITE_SIMULATE_CUDA', None)
    env.pop('TENSORLITE_RECORD_LAUNCHES', None)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [root, env.get('PYTHONPATH')]))
    done = subprocess.run([sys.executable, '-m', 'tensorlite.kernels.cuda._report', arch, ptxas,
                           ','.join(dtypes)], env=env, capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode:
        raise RuntimeError(f'compiling the CUDA twins failed:\n{done.stderr[-4000:]}')
    return json.loads(done.stdout)


def _compile_all(arch, ptxas, dtypes):
    """In the compiling process: the report's dict."""
    from numba import config
    assert not config.ENABLE_CUDASIM, 'the CUDA simulator cannot compile'
    from numba import cuda
    from numba.cuda import dispatcher
    from . import _launches
    cc = tuple(int(c) for c in arch[3:])

    class Device:                   # a device function called by a kernel is compiled for the
        compute_capability = cc     # current device's capability: there is none, so `arch`'s
    dispatcher.get_current_device = Device
    signatures = _launches.load()
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, kernel in _launches.kernels().items():
            if name not in signatures:
                raise RuntimeError(f'{name} has no recorded launch signature: see _launches.py')
            for dtype in dtypes:
                spec, recorded = signature_for(signatures[name], dtype)
                sig = tuple(_launches.numba_type(t) for t in spec)
                record = dict(kernel=name, dtype=dtype, signature_recorded=recorded, error='')
                records.append(record)
                threads = threads_per_block(name)
                try:
                    ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=cc)
                except Exception as e:          # reported, so the other kernels are still seen
                    record.update(dict.fromkeys(KEYS), threads_per_block=threads,
                                  error=f'NVVM: {type(e).__name__}: {str(e).splitlines()[-1]}')
                    continue
                path = os.path.join(tmp, 'kernel.ptx')
                with open(path, 'w') as f:
                    f.write(ptx)
                done = subprocess.run([ptxas, f'-arch={arch}', '-v', path, '-o', path + '.cubin'],
                                      capture_output=True, text=True)
                if done.returncode:
                    raise RuntimeError(f'ptxas failed on {name} ({dtype}):\n{done.stderr}')
                record.update(parse_ptxas(done.stderr + done.stdout))
                record['f64_instructions'] = count_f64(ptx)
                record['f64_reason'] = F64_REASONS.get(name, '') if record['f64_instructions'] else ''
                record['max_threads_per_block'], record['occupancy'] = limits(
                    record['registers'], record['shared_bytes'], threads, arch)
                record['threads_per_block'] = threads
    return {'arch': arch, 'kernels': records}


KEYS = ['registers', 'spill_bytes', 'shared_bytes', 'local_bytes', 'f64_instructions', 'f64_reason',
        'max_threads_per_block', 'occupancy', 'threads_per_block']

COLUMNS = [('kernel', 'kernel', 34), ('dtype', 'dtype', 7), ('registers', 'regs', 5),
           ('spill_bytes', 'spill', 6), ('shared_bytes', 'smem', 6), ('local_bytes', 'local', 6),
           ('f64_instructions', 'f64', 5), ('max_threads_per_block', 'max thr', 8),
           ('threads_per_block', 'block', 6), ('occupancy', 'occup.', 7)]


def table(result, markdown=False):
    """The report as a text (or Markdown) table, one line per kernel and dtype."""
    rows = [[str(r[key]) + ('*' if key == 'f64_instructions' and r['f64_reason'] else '')
             for key, _, _ in COLUMNS] if not r['error'] else [r['kernel'], r['dtype'], r['error']]
            for r in result['kernels']]
    if markdown:
        lines = ['| ' + ' | '.join(h for _, h, _ in COLUMNS) + ' |',
                 '|' + '|'.join(' --- ' for _ in COLUMNS) + '|']
        lines += ['| ' + ' | '.join(row + [''] * (len(COLUMNS) - len(row))) + ' |' for row in rows]
    else:
        fmt = lambda row: '  '.join(v.ljust(w) if i < 2 or len(row) < len(COLUMNS) else v.rjust(w)
                                    for i, (v, (_, _, w)) in enumerate(zip(row, COLUMNS)))
        lines = [f"arch {result['arch']}", fmt([h for _, h, _ in COLUMNS])] + [fmt(r) for r in rows]
    lines.append('(* float64 on purpose: ' + '; '.join(
        f'{k}: {v}' for k, v in F64_REASONS.items()) + ')')
    return '\n'.join(lines)


if __name__ == '__main__':
    json.dump(_compile_all(sys.argv[1], sys.argv[2], sys.argv[3].split(',')), sys.stdout)
