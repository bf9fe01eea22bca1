{{/*
Names, labels and the shared pieces of pod specs. Component templates live in operator/, api/ and tasks/.
*/}}

{{- define "ccr.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ccr.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ccr.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Common labels; call with (dict "ctx" $ "component" "api"). */}}
{{- define "ccr.labels" -}}
helm.sh/chart: {{ include "ccr.chart" .ctx }}
{{ include "ccr.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: claude-code-runner
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "ccr.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ccr.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "ccr.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "ccr.taskImage" -}}
{{- printf "%s:%s" .Values.tasks.image.repository (.Values.tasks.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "ccr.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (printf "%s-operator" (include "ccr.fullname" .)) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ccr.api.serviceAccountName" -}}
{{- if .Values.api.serviceAccount.create }}
{{- default (printf "%s-api" (include "ccr.fullname" .)) .Values.api.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.api.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Empty means "the namespace's default ServiceAccount" (the operator then sets none). */}}
{{- define "ccr.tasks.serviceAccountName" -}}
{{- if .Values.tasks.serviceAccount.create }}
{{- default (printf "%s-task" (include "ccr.fullname" .)) .Values.tasks.serviceAccount.name }}
{{- else }}
{{- .Values.tasks.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ccr.claudeSecretName" -}}
{{- default (printf "%s-claude" (include "ccr.fullname" .)) .Values.claude.existingSecret }}
{{- end }}

{{- define "ccr.githubSecretName" -}}
{{- default (printf "%s-github" (include "ccr.fullname" .)) .Values.github.existingSecret }}
{{- end }}

{{- define "ccr.sessionSecretName" -}}
{{- default (printf "%s-session" (include "ccr.fullname" .)) .Values.api.sessionSecret.existingSecret }}
{{- end }}

{{- define "ccr.api.taskNamespace" -}}
{{- default .Release.Namespace .Values.api.taskNamespace }}
{{- end }}

{{/*
Namespaces that run task pods and so get the task ServiceAccount, NetworkPolicy, credential Secrets and
(unless cluster-wide) the operator's Role: the watched namespaces, or the release namespace.
Returns a JSON list; use with fromJsonArray.
*/}}
{{- define "ccr.taskNamespaces" -}}
{{- if .Values.operator.watchNamespaces }}
{{- .Values.operator.watchNamespaces | uniq | toJson }}
{{- else }}
{{- list .Release.Namespace | toJson }}
{{- end }}
{{- end }}

{{/* CCR_NAMESPACES: the comma-separated watched namespaces. */}}
{{- define "ccr.operator.namespacesEnv" -}}
{{- if .Values.operator.watchNamespaces }}
{{- .Values.operator.watchNamespaces | uniq | join "," }}
{{- else }}
{{- .Release.Namespace }}
{{- end }}
{{- end }}

{{/*
Restricted Pod Security Standard, shared by every pod the chart creates (the operator builds task pods
with the same settings). uid/gid 10001 is the image's user.
*/}}
{{- define "ccr.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "ccr.containerSecurityContext" -}}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Fail early on contradictory values (the schema cannot express these). */}}
{{- define "ccr.validate" -}}
{{- if and .Values.claude.existingSecret (or .Values.claude.oauthToken .Values.claude.credentialsJson) }}
{{- fail "claude.existingSecret is set: leave claude.oauthToken and claude.credentialsJson empty" }}
{{- end }}
{{- if and .Values.github.existingSecret .Values.github.token }}
{{- fail "github.existingSecret is set: leave github.token empty" }}
{{- end }}
{{- if and .Values.api.sessionSecret.existingSecret .Values.api.sessionSecret.value }}
{{- fail "api.sessionSecret.existingSecret is set: leave api.sessionSecret.value empty" }}
{{- end }}
{{- $apiNs := include "ccr.api.taskNamespace" . }}
{{- if not (has $apiNs (fromJsonArray (include "ccr.taskNamespaces" .))) }}
{{- fail (printf "the API creates ClaudeTasks in %q, which the operator does not watch: add it to operator.watchNamespaces or set api.taskNamespace" $apiNs) }}
{{- end }}
{{- end }}

{{/*
CCR_ALLOWED_HOSTS: the names the API answers to besides localhost and IP addresses (DNS rebinding guard).
The Ingress host, the Service's in-cluster names, then api.allowedHosts.
*/}}
{{- define "ccr.api.allowedHosts" -}}
{{- $svc := include "ccr.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- $hosts := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) -}}
{{- if .Values.api.ingress.enabled }}{{ $hosts = prepend $hosts .Values.api.ingress.host }}{{ end -}}
{{- concat $hosts .Values.api.allowedHosts | uniq | join "," -}}
{{- end }}
