{{/* Names and labels shared by every template of the chart. */}}

{{- define "atomic-operator.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name; a release already named after the chart is not doubled. */}}
{{- define "atomic-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "atomic-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "atomic-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "atomic-operator.labels" -}}
{{ include "atomic-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "atomic-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "atomic-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "atomic-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "atomic-operator.runtimeImage" -}}
{{- default (printf "ghcr.io/atomic-agents/atomic-runtime:%s" .Chart.AppVersion) .Values.runtimeImage }}
{{- end }}

{{/* The ValidatingWebhookConfiguration the operator keeps current (cluster-scoped). */}}
{{- define "atomic-operator.webhookConfiguration" -}}
{{- printf "%s.%s.atomicagents.io" (include "atomic-operator.fullname" .) .Release.Namespace }}
{{- end }}
