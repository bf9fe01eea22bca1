{{/*
The API's RBAC rules, in the namespace where it creates ClaudeTasks. They mirror
ccr.operator.rbac.api_rules(); tests/chart/test_rbac.py fails when the two drift.
*/}}
{{- define "ccr.api.rules" -}}
# Application: the dashboard and REST API submit (create), list, show, cancel (patch spec.cancel) and
# delete tasks; the ClaudeTask is the record of truth, the API never starts work itself.
- apiGroups: ["ccr.dev"]
  resources: ["claudetasks"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Application: find the task's pod to stream its log.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
# Application: stream the transcript live (Server-Sent Events) and archive it when the task ends.
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
{{- end }}
