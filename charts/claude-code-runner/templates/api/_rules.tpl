{{/*
The API's RBAC rules, in the namespace where it creates ClaudeTasks. They mirror
ccr.operator.rbac.api_rules(); tests/chart/test_rbac.py fails when the two drift.
*/}}
{{- define "ccr.api.rules" -}}
# Application: tasks are ClaudeTasks: create (POST /task, the dashboard), watch them into the API's
# cache, patch spec.cancel and the transcript-archived annotation. The API never starts work itself.
- apiGroups: ["ccr.dev"]
  resources: ["claudetasks"]
  verbs: ["get", "list", "watch", "create", "patch"]
# Application: find the task's pod to stream its log.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
# Application: the live transcript (follow=true) and its durable copy on the data volume.
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
{{- end }}
