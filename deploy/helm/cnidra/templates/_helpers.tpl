{{/* Names and labels shared by the templates. */}}

{{- define "cnidra.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cnidra.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "cnidra.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "cnidra.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "cnidra.serviceAccountName" -}}
{{- default (include "cnidra.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "cnidra.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cnidra.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "cnidra.labels" -}}
{{ include "cnidra.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The metrics/health port: the part of settings.metricsAddress after the last colon. */}}
{{- define "cnidra.metricsPort" -}}
{{- .Values.settings.metricsAddress | toString | splitList ":" | last | int -}}
{{- end -}}

{{/* The kubelet plugin socket directory: settings.kubeletPluginDir or plugins/<driver>. */}}
{{- define "cnidra.pluginDir" -}}
{{- default (printf "/var/lib/kubelet/plugins/%s" .Values.settings.driverName) .Values.settings.kubeletPluginDir -}}
{{- end -}}
