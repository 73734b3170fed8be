"""Writes the small .npy files the OnnxIO tests read (numpy is the independent writer).

Run: python3 tools/make_npy_fixtures.py Tests/OnnxIOTests/Fixtures
Each array is np.arange(n).reshape(shape) / 4 in its dtype, so the tests know the values without numpy.
"""
import sys
from pathlib import Path

import numpy as np
from numpy.lib import format as npformat

out = Path(sys.argv[1] if len(sys.argv) > 1 else "Tests/OnnxIOTests/Fixtures")
out.mkdir(parents=True, exist_ok=True)


def arange(dtype, shape):
    n = int(np.prod(shape))
    return (np.arange(n, dtype=np.float64) / 4).astype(dtype).reshape(shape)


for name, dtype in [("f4", np.float32), ("f8", np.float64), ("i8", np.int64), ("i4", np.int32), ("u1", np.uint8)]:
    np.save(out / f"arange_{name}_2x3x4.npy", arange(dtype, (2, 3, 4)))
np.save(out / "bool_5.npy", np.array([True, False, True, True, False]))
np.save(out / "scalar_f4.npy", np.float32(2.5))
np.save(out / "empty_f4_0x3.npy", np.zeros((0, 3), np.float32))
for version in [(2, 0), (3, 0)]:
    with open(out / f"arange_f4_v{version[0]}.npy", "wb") as f:
        npformat.write_array(f, arange(np.float32, (3, 2)), version=version)
np.save(out / "fortran_f4.npy", np.asfortranarray(arange(np.float32, (3, 2))))
np.save(out / "bigendian_f4.npy", arange(np.dtype(">f4"), (3, 2)))
print("wrote", sorted(p.name for p in out.glob("*.npy")))
