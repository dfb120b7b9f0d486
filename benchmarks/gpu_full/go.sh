#!/bin/bash
# The first run's script (2026-12-04), kept as its record: prepare.py and run.py replace it.
# Every chapter in the `full` profile on a GPU machine that has no Jupyter and no network,
# side by side (one process per chapter, two CPU threads each); benchmarks/README.md says
# what it showed.
#
#   SITE=site.tar.xz MIRROR=data-mirror OUT=results bash benchmarks/gpu_full/go.sh 520
#
# SITE: the packages the machine lacks, unpacked from their wheels into one xz tarball
# (pooch, platformdirs, stardist, csbdeep, zarr, numcodecs, donfig, google-crc32c, dask,
# partd, locket, importlib_metadata, ome-zarr, ome-zarr-models, pydantic-zarr, Deprecated,
# rangehttpserver, SimpleITK, bioimageio.spec and .core and their pydantic stack,
# laptrack, traccuracy, geff, geff-spec, pylapy, skan, openpyxl, et-xmlfile).
# MIRROR: a copy of the data mirror (served on 127.0.0.1). OUT: where results.tar.gz goes.
# Arguments: seconds allowed per chapter, and the chapters (default: all).
T=${1:-480}
CHAPTERS=${2:-"01_nn_basics 02_restoration 03_segmentation 04_validation 05_reporting 06_volumes 07_tracking"}
REPO=$(pwd)
RES=/tmp/res; mkdir -p $RES /tmp/site /tmp/lessons "$OUT"
t0=$(date +%s)
nvidia-smi -L; nproc; free -g | head -2
tar xJf $SITE -C /tmp/site || exit 1
echo "unpacked in $(( $(date +%s) - t0 )) s"
export PYTHONPATH=$REPO:/tmp/site:$REPO/benchmarks/gpu_full/stub MPLBACKEND=Agg PYTHONUNBUFFERED=1
export DLBIO_DATA_DIR=/tmp/dlbio-data DLBIO_DATA_MIRROR=http://127.0.0.1:8765
export DLBIO_PROFILE=full DLBIO_LESSONS_DIR=/tmp/lessons OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
(python3 -m http.server --bind 127.0.0.1 8765 -d $MIRROR > /tmp/http.log 2>&1 &)
sleep 1
python3 - <<'EOF' 2>&1 | tee $RES/env.txt
import importlib, platform
import torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
for m in ["numpy", "scipy", "skimage", "stardist", "zarr", "dask", "ome_zarr", "SimpleITK",
          "bioimageio.spec", "bioimageio.core", "laptrack", "traccuracy", "pooch", "tifffile"]:
    try:
        mod = importlib.import_module(m); print(m, getattr(mod, "__version__", "?"))
    except Exception as e:
        print("IMPORT FAILED", m, type(e).__name__, e)
from dlbio_teach.data import REGISTRY, fetch
for key in REGISTRY:
    try:
        fetch(key); print("fetched", key)
    except Exception as e:
        print("not fetched", key, type(e).__name__, str(e)[:120])
EOF
echo "setup done at $(( $(date +%s) - t0 )) s"
for ch in $CHAPTERS; do
  mkdir -p /tmp/w/$ch && cp -r notebooks/. /tmp/w/$ch/
  (cd /tmp/w/$ch && timeout $T python3 $REPO/benchmarks/gpu_full/run_nb.py $ch.ipynb $RES > $RES/$ch.log 2>&1; echo "rc=$?" >> $RES/$ch.log) &
done
(while true; do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader >> $RES/gpu.csv; sleep 5; done) &
pack() { cp /tmp/lessons/*.json $RES/ 2>/dev/null; tar czf $OUT/results.tar.gz -C $RES . ; }
while [ "$(jobs -r | wc -l)" -gt 1 ]; do sleep 20; pack; grep -h "OK in\|ERROR" $RES/*.log 2>/dev/null | sort -u | tail -3; done
pack
echo "all done at $(( $(date +%s) - t0 )) s"
grep -h "OK in\|ERROR in\|rc=" $RES/*.log
