{{/* Labels of every object: the name manifests/ uses, and what helm adds. */}}
{{- define "runbook-operator.labels" -}}
app.kubernetes.io/name: runbook-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* The Deployment's selector: as manifests/ (a selector cannot change after install). */}}
{{- define "runbook-operator.selectorLabels" -}}
app.kubernetes.io/name: runbook-operator
{{- end }}

{{- define "runbook-operator.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "runbook-operator.runnerImage" -}}
{{ .Values.runnerImage.repository }}:{{ .Values.runnerImage.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The operator's rules, read from manifests/rbac.yaml's ClusterRole (files/operator/ links to
it, which explains each), split into those on cluster-scoped resources (CRD discovery) and the
rest: one list of rights for the chart and the kustomize base. */}}
{{- define "runbook-operator.ruleSets" -}}
{{- $clusterGroups := list "apiextensions.k8s.io" }}
{{- $namespaced := list }}
{{- $cluster := list }}
{{- range splitList "\n---\n" (.Files.Get "files/operator/rbac.yaml") }}
{{- $doc := fromYaml . }}
{{- if eq (toString $doc.kind) "ClusterRole" }}
{{- range $doc.rules }}
{{- if has (first .apiGroups) $clusterGroups }}
{{- $cluster = append $cluster . }}
{{- else }}
{{- $namespaced = append $namespaced . }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml (dict "namespaced" $namespaced "cluster" $cluster) }}
{{- end }}

{{- define "runbook-operator.namespacedRules" -}}
{{ (include "runbook-operator.ruleSets" . | fromYaml).namespaced | toYaml }}
{{- end }}

{{- define "runbook-operator.clusterRules" -}}
{{ (include "runbook-operator.ruleSets" . | fromYaml).cluster | toYaml }}
{{- end }}

