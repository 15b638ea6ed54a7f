# Regenerates the adapter fixtures AdapterStoreTest reads, written by the reference writers
# (safetensors' numpy API and numpy's np.save), so that our Java readers are checked against an
# independent implementation:
#   pip install numpy safetensors ml_dtypes && python3 gen_adapters.py
# Writes, next to this script:
#   basic/   one adapter per file: safetensors F32/F16/BF16 and .npy <f4/<f2/<f8 (one Fortran-ordered)
#   multi/   one safetensors file holding several adapters (the tensor name is the id)
#   peft/    a PEFT-style LoRA file: lora_A (r, d_in) and lora_B (d_out, r) for two layers
#   bad-shape/  two adapters whose shapes differ (the store must refuse them, naming both)
#   expected.csv  file, tensor, dtype, shape, then every value as float32 bits (hex), row-major
import os
import numpy as np, ml_dtypes
from safetensors.numpy import save_file

here = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(11)
D_IN, D_OUT = 8, 6
rows = []


def out(sub, name):
    d = os.path.join(here, sub)
    os.makedirs(d, exist_ok=True)
    return os.path.join(d, name)


def record(rel, tensor, a):
    f32 = a.astype(np.float32)
    rows.append('%s,%s,%s,%s,%s' % (rel, tensor, a.dtype.name, 'x'.join(map(str, a.shape)),
                                    ' '.join('%08x' % v for v in np.ascontiguousarray(f32).reshape(-1).view(np.uint32))))


def weights(shape, dtype):
    return rng.standard_normal(shape).astype(np.float32).astype(dtype)


for stem, dtype in [('alpha', np.float32), ('beta', np.float16), ('gamma', ml_dtypes.bfloat16)]:
    w = weights((D_IN, D_OUT), dtype)
    save_file({'weight': w}, out('basic', stem + '.safetensors'))
    record('basic/%s.safetensors' % stem, 'weight', w)
for stem, dtype in [('17', np.float32), ('delta', np.float16), ('epsilon', np.float64)]:
    w = weights((D_IN, D_OUT), dtype)
    np.save(out('basic', stem + '.npy'), w)
    record('basic/%s.npy' % stem, '', w)
w = np.asfortranarray(weights((D_IN, D_OUT), np.float32))
np.save(out('basic', 'zeta.npy'), w)
record('basic/zeta.npy', '', w)

multi = {'tenant_%d' % i: weights((D_IN, D_OUT), np.float16) for i in range(3)}
save_file(multi, out('multi', 'tenants.safetensors'), metadata={'format': 'np'})
for name, w in multi.items():
    record('multi/tenants.safetensors', name, w)

r = 4
peft = {}
for layer in range(2):
    p = 'base_model.model.layers.%d.self_attn.q_proj.' % layer
    peft[p + 'lora_A.weight'] = weights((r, D_IN), ml_dtypes.bfloat16)
    peft[p + 'lora_B.weight'] = weights((D_OUT, r), ml_dtypes.bfloat16)
save_file(peft, out('peft', 'adapter_model.safetensors'))
for name, w in peft.items():
    record('peft/adapter_model.safetensors', name, w)

save_file({'weight': weights((D_IN, D_OUT), np.float32)}, out('bad-shape', 'ok.safetensors'))
np.save(out('bad-shape', 'wide.npy'), weights((D_IN, D_OUT + 1), np.float32))

with open(os.path.join(here, 'expected.csv'), 'w') as f:
    f.write('# file,tensor,dtype,shape,float32 bits of every value (row-major); numpy %s, ml_dtypes %s\n'
            % (np.__version__, ml_dtypes.__version__))
    f.write('\n'.join(rows) + '\n')
