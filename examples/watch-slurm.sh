#!/bin/bash
# A watcher as a long SLURM job whose reading and tagging run on a Dask cluster of SLURM jobs.
#
#   sbatch examples/watch-slurm.sh
#
# This job is the catalog's single writer and the Dask scheduler; dask-jobqueue submits the workers that
# examples/slurm-cluster.yml describes (they must see the data at the same path).  When the walltime ends or
# the job is preempted, SLURM requeues it; the new watcher's scan at start reads what arrived in between, and
# files already catalogued are not read again.  `scisearch status $CATALOG` shows what it is doing.
#
# On one big node without SLURM workers, `--workers 16` instead of `--dask …` starts a local Dask cluster.

#SBATCH --job-name=scisearch-watch
#SBATCH --qos=workflow            # a long-running, low-CPU service queue at many centres; ask yours
#SBATCH --time=24:00:00
#SBATCH --cpus-per-task=2
#SBATCH --mem=8G
#SBATCH --requeue
#SBATCH --signal=B:TERM@120       # SIGTERM two minutes before the end: the watcher stops cleanly
#SBATCH --output=scisearch-watch-%j.log

set -euo pipefail
module load python
source /global/common/software/m0000/scisearch/.venv/bin/activate
export SCISEARCH_CONFIG=/global/common/software/m0000/scisearch/metadata.yml
CATALOG=/global/cfs/facility/scisearch/catalog.db

# exec: the batch shell's SIGTERM reaches the watcher itself.
exec scisearch watch "$CATALOG" /global/cfs/facility/microscopes \
    --dask examples/slurm-cluster.yml \
    --settle 10s --partner-timeout 15m --batch 500 --tag-every 10m \
    -t metadata -t filenames -t image_analysis
