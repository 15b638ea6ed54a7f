# Regenerates dtype_vectors.csv, the independent reference for DType's conversions:
#   pip install numpy ml_dtypes && python3 gen_dtype_vectors.py > dtype_vectors.csv
import numpy as np, ml_dtypes
rng = np.random.default_rng(7)
special = [0.0, -0.0, 1.0, -1.0, 0.1, 65504, 65519, 65520, 1e5, -1e5, 6.1e-5, 6e-8, 3e-8, 2.98e-8,
           1e-9, np.inf, -np.inf, 1 / 3, 2049, 2051, 4097, 3.0e38, 1.00390625, 1.01171875]
vals = np.concatenate([np.array(special, dtype=np.float32),
                       (rng.standard_normal(24) * np.float32(10.0) ** rng.integers(-8, 6, 24)).astype(np.float32)])
print('# float32 bits, float16 bits, bfloat16 bits: numpy %s astype(float16), ml_dtypes %s astype(bfloat16)'
      % (np.__version__, ml_dtypes.__version__))
for v, h, b in zip(vals.view(np.uint32), vals.astype(np.float16).view(np.uint16),
                   vals.astype(ml_dtypes.bfloat16).view(np.uint16)):
    print('%08x,%04x,%04x' % (v, h, b))
