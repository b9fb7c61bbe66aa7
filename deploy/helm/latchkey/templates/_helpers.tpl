{{/* Chart name, truncated to 63 characters (DNS label). */}}
{{- define "latchkey.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Fully qualified app name. */}}
{{- define "latchkey.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* app.kubernetes.io/name of the `helm test` pod: a label value, so at most 63 characters. */}}
{{- define "latchkey.testName" -}}
{{- printf "%s-test" (include "latchkey.name" . | trunc 58 | trimSuffix "-") -}}
{{- end -}}

{{- define "latchkey.selectorLabels" -}}
app.kubernetes.io/name: {{ include "latchkey.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "latchkey.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "latchkey.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: connector
{{- end -}}

{{- define "latchkey.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "latchkey.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Refuses values that cannot work, at install time rather than at 3 a.m. */}}
{{- define "latchkey.validate" -}}
{{- if not .Values.controlPlaneUrl -}}
{{- fail "controlPlaneUrl is required (wss://…)" -}}
{{- end -}}
{{- if not .Values.connectorId -}}
{{- fail "connectorId is required" -}}
{{- end -}}
{{- if not .Values.connectorToken.existingSecret -}}
{{- fail "connectorToken.existingSecret is required: the token is read from a Secret, never from values" -}}
{{- end -}}
{{- if not .Values.trustedKeys -}}
{{- fail "trustedKeys is required: the control plane's Ed25519 public keys ({\"kid\": \"key\"}); without one the agent refuses to start" -}}
{{- end -}}
{{- if and .Values.serviceAccount.roleArn (not .Values.serviceAccount.create) -}}
{{- fail "serviceAccount.roleArn needs serviceAccount.create: the chart annotates only a ServiceAccount it creates (annotate your own ServiceAccount with eks.amazonaws.com/role-arn instead)" -}}
{{- end -}}
{{- if and .Values.serviceMonitor.enabled .Values.networkPolicy.enabled (not .Values.networkPolicy.metricsFrom) -}}
{{- fail "serviceMonitor.enabled with networkPolicy.enabled needs networkPolicy.metricsFrom (your Prometheus's namespace or pods): the policy denies every other ingress, so scrapes would be blocked" -}}
{{- end -}}
{{- if le (int .Values.terminationGracePeriodSeconds) (int .Values.shutdownGraceSeconds) -}}
{{- fail "terminationGracePeriodSeconds must be larger than shutdownGraceSeconds, or Kubernetes kills the agent before it has flushed its results" -}}
{{- end -}}
{{- end -}}
