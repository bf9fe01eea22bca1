{{/*
The operator's RBAC rules. They mirror ccr.operator.rbac.operator_rules(); tests/chart/test_rbac.py fails
when the two drift. Every rule says why it exists.
*/}}
{{- define "ccr.operator.rules" -}}
# Application: watch ClaudeTasks; kopf records its progress and finalizer in annotations (patch).
- apiGroups: ["ccr.dev"]
  resources: ["claudetasks"]
  verbs: ["get", "list", "watch", "patch"]
# Application: phase, conditions, PR URL and usage are written to the status subresource.
- apiGroups: ["ccr.dev"]
  resources: ["claudetasks/status"]
  verbs: ["get", "patch"]
# Application: one Job per task; delete on cancel, patch to set the TTL once the transcript is archived.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "delete", "patch"]
# Application: the task's spec is handed to its pod as an immutable ConfigMap (owned by the task).
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "create", "delete"]
# Application: follow the task's pod (phase, termination message with the machine-readable result).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
# Framework: kopf posts Kubernetes Events about handler progress on the ClaudeTask.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
