#!/bin/sh
# Prints the GPUs this job was given. The worker sets CUDA_VISIBLE_DEVICES to the UUIDs of the job's GPUs (empty for a
# job given none); nvidia-smi -L -i <uuid> shows what they are when the driver is present.
set -u
visible="${CUDA_VISIBLE_DEVICES:-}"
echo "CUDA_VISIBLE_DEVICES=$visible"
names=""
if [ -n "$visible" ] && command -v nvidia-smi >/dev/null 2>&1; then
  names=$(nvidia-smi -L -i "$visible" 2>&1 | tr '\n' ';' | sed 's/"/\\"/g; s/;$//')
fi
echo "GANTRY_PROGRESS 100 done"
printf 'GANTRY_RESULT {"cudaVisibleDevices":"%s","nvidiaSmi":"%s"}\n' "$visible" "$names"
