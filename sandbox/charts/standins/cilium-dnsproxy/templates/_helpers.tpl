{{/* Fails like the real chart when ServiceMonitors are asked for without the Prometheus operator CRDs. */}}
{{- define "standin.requireServiceMonitorCRD" -}}
{{- if not (or (.root.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor") .trust) -}}
{{- fail (printf "Service Monitor requires monitoring.coreos.com/v1 CRDs. Please refer to https://github.com/prometheus-operator/prometheus-operator/blob/main/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml or set %s=true" .path) -}}
{{- end -}}
{{- end -}}
{{- define "standin.labels" -}}
app.kubernetes.io/part-of: cilium
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
