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

{{/* Rules on namespaced resources, as manifests/rbac.yaml explains each. */}}
{{- define "runbook-operator.namespacedRules" -}}
- apiGroups: ["runbook.dev"]
  resources: ["backuppolicies", "notificationchannels", "alertrules", "escalationpolicies",
              "incidents"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["runbook.dev"]
  resources: ["backuppolicies/status", "notificationchannels/status", "alertrules/status",
              "escalationpolicies/status", "incidents/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["runbook.dev"]
  resources: ["incidents"]
  verbs: ["get", "list", "create"]
- apiGroups: ["runbook.dev"]
  resources: ["incidents/status"]
  verbs: ["get", "patch"]
- apiGroups: ["runbook.dev"]
  resources: ["escalationpolicies"]
  verbs: ["get"]
- apiGroups: ["runbook.dev"]
  resources: ["backuppolicies/finalizers"]
  verbs: ["update"]
- apiGroups: ["batch"]
  resources: ["cronjobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "patch"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "create", "patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* Rules on cluster-scoped resources: CRD discovery and kopf's peering. */}}
{{- define "runbook-operator.clusterRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  verbs: ["get", "list", "watch", "create", "patch"]
{{- end }}

{{/* kopf's peering when it watches chosen namespaces: a KopfPeering in each (peering.yaml). */}}
{{- define "runbook-operator.peeringRules" -}}
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}
