#!/bin/sh
# Codebook training: sf-codebook against faiss's k-means (Debian's
# python3-faiss) on the same descriptors, with the same k, iterations and
# seed.  Prints both final inertias (each also recomputed by a faiss exact
# search, so both are measured the same way), their ratio and both times.
#
# Usage: bench/codebook.sh [N [D [K [ITERATIONS]]]]
#          synthetic descriptors: N x D (default 200000 x 128) around
#          N/200 Gaussian centres, k = K (4096), 10 iterations
#        bench/codebook.sh -s STREAM [K [ITERATIONS]]
#          the local_desc descriptors of a feature stream (all of them:
#          keep them under sf-codebook's --max-samples, 10 million)
#   SF_BIN: directory of the sf programs (default: installed ones)
#   SF_GEN: the synthetic stream writer (default: $SF_BIN/../tests/test_kmeans)
#   PYTHON: a Python with numpy and faiss (default /usr/bin/python3;
#           apt-get install python3-faiss)
#   THREADS: threads for both (default: all cores); SEED (default 1)
# faiss's speed depends on the BLAS behind libblas.so.3, which the output
# names: Debian's default is the slow reference BLAS.  For a fair time, run
# with LD_LIBRARY_PATH set to OpenBLAS's directory (libopenblas0-pthread:
# /usr/lib/x86_64-linux-gnu/openblas-pthread).
set -eu
[ -z "${SF_BIN:-}" ] || PATH=$SF_BIN:$PATH
python=${PYTHON:-/usr/bin/python3}
threads=${THREADS:-$(nproc)}
seed=${SEED:-1}
stream=
if [ "${1:-}" = -s ]; then
    stream=$2
    shift 2
    k=${1:-4096}
    iterations=${2:-10}
else
    n=${1:-200000}
    d=${2:-128}
    k=${3:-4096}
    iterations=${4:-10}
fi
"$python" -c 'import faiss, numpy' 2>/dev/null || {
    echo "codebook.sh: $python cannot import faiss and numpy (apt-get install python3-faiss)" >&2
    exit 1
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
now() { date +%s.%N; }

if [ -z "$stream" ]; then
    gen=${SF_GEN:-${SF_BIN:+$SF_BIN/../tests/test_kmeans}}
    [ -n "$gen" ] && [ -x "$gen" ] || {
        echo "codebook.sh: set SF_GEN to tests/test_kmeans of a build tree" >&2
        exit 1
    }
    rows=1000
    images=$(( (n + rows - 1) / rows ))
    centres=$(( n / 200 > 0 ? n / 200 : 1 ))
    "$gen" --write-stream "$tmp/data.sfs" "$images" "$rows" "$d" "$centres" 2.0 noscale
    stream=$tmp/data.sfs
    what="synthetic: $centres Gaussian centres in [0,10]^$d, sigma 2"
else
    what=$stream
fi

# sf-codebook: wall time of the whole program (reading included) and of
# its k-means alone, from -v.
t0=$(now)
sf-codebook -v -k "$k" --iterations "$iterations" --seed "$seed" --threads "$threads" \
    -o "$tmp/cb.sfcb" "$stream" 2> "$tmp/sf.err" || { cat "$tmp/sf.err" >&2; exit 1; }
t1=$(now)
sf_wall=$(awk "BEGIN { print $t1 - $t0 }")
sf_kmeans=$(sed -n 's/^sf-codebook: wrote .*, \([0-9.]*\) s$/\1/p' "$tmp/sf.err")
sf_inertia=$(sf-codebook --info "$tmp/cb.sfcb" | sed -n 's/^inertia: //p')

# The same descriptors for faiss, through sf-cat's .npy export.
mkdir "$tmp/npy"
sf-cat --kind local_desc --npy "$tmp/npy" "$stream"

"$python" - "$tmp/npy" "$tmp/cb.sfcb" "$k" "$iterations" "$seed" "$threads" \
    "$sf_wall" "$sf_kmeans" "$sf_inertia" "$what" <<'EOF'
import glob, sys, time
import numpy as np
import faiss

npy, cb, k, it, seed, threads = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
sf_wall, sf_kmeans, sf_inertia, what = float(sys.argv[7]), float(sys.argv[8]), float(sys.argv[9]), sys.argv[10]
x = np.ascontiguousarray(np.concatenate(
    [np.load(f) for f in sorted(glob.glob(npy + "/*.local_desc.*.npy"))]), dtype=np.float32)
n, d = x.shape
faiss.omp_set_num_threads(threads)

def inertia(c):
    index = faiss.IndexFlatL2(d)
    index.add(c)
    dist, _ = index.search(x, 1)
    return float(dist.sum(dtype=np.float64))

# No subsampling: faiss would otherwise keep at most 256 points per centroid.
km = faiss.Kmeans(d, k, niter=it, seed=seed, max_points_per_centroid=1 << 30, verbose=False)
t0 = time.time()
km.train(x)
faiss_time = time.time() - t0
faiss_last_obj = float(km.obj[-1])      # assignment of the last iteration, before its update
faiss_final = inertia(km.centroids)     # the centroids faiss returns
sf_c = np.fromfile(cb, dtype="<f4", offset=128).reshape(k, d)
sf_final = inertia(sf_c)

with open("/proc/self/maps") as maps:
    libs = {line.split()[-1] for line in maps}
blas = sorted(p for p in libs if "blas" in p.rsplit("/", 1)[-1]) or ["?"]
print(f"data: {n} x {d} ({what}); k = {k}, {it} iterations, seed {seed}, {threads} threads")
print(f"faiss uses {', '.join(blas)}")
print(f"sf-codebook   {sf_wall:8.2f} s  (k-means {sf_kmeans:.2f} s)  "
      f"final inertia {sf_inertia:.6e} (its own), {sf_final:.6e} (faiss search)")
print(f"faiss {faiss.__version__:7s} {faiss_time:8.2f} s                     "
      f"final inertia {faiss_final:.6e} (faiss search; obj[-1] = {faiss_last_obj:.6e})")
print(f"inertia ratio sf / faiss: {sf_final / faiss_final:.5f}")
print(f"time ratio sf k-means / faiss train: {sf_kmeans / faiss_time:.3f}"
      f" (whole sf-codebook run: {sf_wall / faiss_time:.3f})")
EOF
