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

{{/* RBAC for what has no namespace: kopf discovers the CRDs and the namespaces it may watch. */}}
{{- define "atomic-operator.clusterRules" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get, list, watch]
{{- end }}

{{/* RBAC in each watched namespace (or cluster-wide when every namespace is watched). */}}
{{- define "atomic-operator.namespacedRules" -}}
- apiGroups: [atomicagents.io]
  resources: [atomicagents, atomicpipelines]
  verbs: [get, list, watch, patch]
- apiGroups: [atomicagents.io]
  resources: [atomicagents/status, atomicpipelines/status]
  verbs: [get, patch]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [apps]
  resources: [deployments/scale]
  verbs: [get, patch, update]
- apiGroups: [""]
  resources: [configmaps, services]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
- apiGroups: [keda.sh]
  resources: [scaledobjects]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end }}

{{/* Where the agents live: the watched namespaces, or all of them. */}}
{{- define "atomic-operator.agentNamespaceSelector" -}}
{{- if .Values.watchNamespaces }}
matchNames:
  {{- toYaml .Values.watchNamespaces | nindent 2 }}
{{- else }}
any: true
{{- end }}
{{- end }}

{{/* The ValidatingWebhookConfiguration the operator keeps current (cluster-scoped). */}}
{{- define "atomic-operator.webhookConfiguration" -}}
{{- printf "%s.%s.atomicagents.io" (include "atomic-operator.fullname" .) .Release.Namespace }}
{{- end }}
