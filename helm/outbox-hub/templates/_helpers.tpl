{{- define "outbox-hub.name" -}}{{ .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- define "outbox-hub.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}
{{- define "outbox-hub.labels" -}}
app.kubernetes.io/name: {{ include "outbox-hub.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
{{- define "outbox-hub.selector" -}}
app.kubernetes.io/name: {{ include "outbox-hub.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}
{{- define "outbox-hub.image" -}}{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}{{- end -}}
{{- define "outbox-hub.serviceAccount" -}}{{ if .Values.serviceAccount.create }}{{ .Values.serviceAccount.name | default (include "outbox-hub.fullname" .) }}{{ else }}{{ .Values.serviceAccount.name | default "default" }}{{ end }}{{- end -}}
{{- define "outbox-hub.mongoSecret" -}}{{ .Values.mongodb.existingSecret | default (printf "%s-secrets" (include "outbox-hub.fullname" .)) }}{{- end -}}
{{- define "outbox-hub.jwtSecret" -}}{{ .Values.jwt.existingSecret | default (printf "%s-secrets" (include "outbox-hub.fullname" .)) }}{{- end -}}
{{- define "outbox-hub.opsSecret" -}}{{ .Values.ops.existingSecret | default (printf "%s-secrets" (include "outbox-hub.fullname" .)) }}{{- end -}}
{{/* Restart pods when configuration or secrets change. */}}
{{- define "outbox-hub.checksums" -}}
checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print $.Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end -}}
{{- define "outbox-hub.mongoUrl" -}}
{{- if .Values.mongodb.embedded.enabled -}}
mongodb://{{ include "outbox-hub.fullname" . }}-mongodb-0.{{ include "outbox-hub.fullname" . }}-mongodb:27017/?replicaSet=rs0
{{- else -}}{{ .Values.mongodb.url }}{{- end -}}
{{- end -}}
{{/* Environment shared by every binary. */}}
{{- define "outbox-hub.env" -}}
- name: MONGO_URL
  valueFrom: { secretKeyRef: { name: {{ include "outbox-hub.mongoSecret" . }}, key: MONGO_URL } }
- name: MEMBER_ID
  valueFrom: { fieldRef: { fieldPath: metadata.name } }
- name: POD_NAMESPACE
  valueFrom: { fieldRef: { fieldPath: metadata.namespace } }
- name: LEASE_BACKEND
  value: {{ .Values.leaseBackend | quote }}
- name: LEASE_PREFIX
  value: {{ include "outbox-hub.fullname" . | lower | trunc 40 | trimSuffix "-" | quote }}
{{- end -}}
{{- define "outbox-hub.pod" -}}
serviceAccountName: {{ include "outbox-hub.serviceAccount" .root }}
automountServiceAccountToken: {{ eq .root.Values.leaseBackend "kubernetes" }}
securityContext: {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.affinity }}
affinity: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
{{/*
Target labels of every scrape (ServiceMonitor and PodMonitor endpoints): `binary` from the
pod's component label, so `up` names the binary (the alert rules in files/alerts.yaml expect
it). honorLabels keeps the `binary` label the binaries put on their own metrics as it is,
instead of renaming it exported_binary.
*/}}
{{- define "outbox-hub.scrapeLabels" -}}
honorLabels: true
relabelings:
  - sourceLabels: [__meta_kubernetes_pod_label_app_kubernetes_io_component]
    targetLabel: binary
{{- end -}}
{{/*
V8's old-space limit in MiB: half the container's memory limit (Mi or Gi); the other half is for
the young generation (48 MiB in Node 20), code, stacks and the off-heap buffers of sockets and
the MongoDB driver. Node 20 otherwise sizes its heap to the whole cgroup limit (259 MB in a
256Mi container, measured in a pod), so under pressure the kernel's OOM killer ends the pod
before V8 collects harder. Empty without a limit in Mi or Gi.
*/}}
{{- define "outbox-hub.heapMiB" -}}
{{- $m := ((.limits | default dict).memory | default "") | toString -}}
{{- if hasSuffix "Mi" $m -}}{{ div (trimSuffix "Mi" $m | int) 2 }}
{{- else if hasSuffix "Gi" $m -}}{{ mul (trimSuffix "Gi" $m | int) 512 }}
{{- end -}}
{{- end -}}
