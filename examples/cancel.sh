#!/usr/bin/env sh
# Cancel a running task: the job gets a grace period to push what it has, then the task ends Cancelled.
#   sh examples/cancel.sh readme-getting-started
set -eu
kubectl patch claudetask "${1:?task name}" --type merge -p '{"spec": {"cancel": true}}'
