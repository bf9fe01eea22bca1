{{/*
The operator's RBAC rules, in each watched namespace. They mirror ccr.operator.rbac.operator_rules();
tests/chart/test_rbac.py fails when the two drift. Every rule says why it exists.
*/}}
{{- define "ccr.operator.rules" -}}
# Application: watch ClaudeTasks (kopf's index, event handlers and timers all list and watch them).
# No update/patch: the operator never writes a task's spec or metadata (no finalizer, no annotations).
- apiGroups: ["ccr.dev"]
  resources: ["claudetasks"]
  verbs: ["get", "list", "watch"]
# Application: phase, conditions, PR URL and usage are written by the operator alone, to the status
# subresource.
- apiGroups: ["ccr.dev"]
  resources: ["claudetasks/status"]
  verbs: ["get", "patch"]
# Application: one Job per task. get tells a lagging cache from a deleted Job, delete cancels a task,
# patch sets ttlSecondsAfterFinished once the transcript is archived.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "delete", "patch"]
# Application: the task's spec is handed to its pod as a mounted ConfigMap (the prompt never goes into
# env or argv). Create only: the owner reference lets the garbage collector delete it.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["create"]
# Application: the pod's phase, start time and termination message (the pipeline's result).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
# Application: the result's fallback, the last log line, when a pod left no termination message.
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
# Framework: kopf posts Kubernetes Events on the ClaudeTasks.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}
