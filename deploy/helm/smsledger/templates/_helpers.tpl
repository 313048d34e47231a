{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "smsledger.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name of the chart's objects. */}}
{{- define "smsledger.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "smsledger.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "smsledger.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component: pass (dict "root" $ "component" "server"). */}}
{{- define "smsledger.selectorLabels" -}}
app.kubernetes.io/name: {{ include "smsledger.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "smsledger.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "smsledger.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "smsledger.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/*
Settings of one component: the global settings with the component's
overrides on top. Pass (dict "root" $ "component" .Values.server); returns YAML.
*/}}
{{- define "smsledger.componentSettings" -}}
{{- $merged := merge (deepCopy (.component.settings | default dict)) (deepCopy .root.Values.settings) }}
{{- toYaml $merged }}
{{- end }}

{{/*
A setting's value as the text of an environment variable. Helm reads every
number of the values as a float, so whole numbers are printed without an
exponent or a decimal point (4194304, not 4.194304e+06).
*/}}
{{- define "smsledger.envValue" -}}
{{- if kindIs "float64" . }}
{{- if eq . (floor .) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- else }}
{{- . }}
{{- end }}
{{- end }}

{{/*
Connection profiles. "smsledger.profiles" is "true" when connectionProfiles
gives a file (its TOML text or an existing Secret), empty otherwise; it fails
when both are given. The file is mounted at "smsledger.profilesPath".
*/}}
{{- define "smsledger.profiles" -}}
{{- $profiles := .Values.connectionProfiles | default dict }}
{{- if and $profiles.toml $profiles.existingSecret }}
{{- fail "connectionProfiles: set toml or existingSecret, not both" }}
{{- end }}
{{- if or $profiles.toml $profiles.existingSecret }}true{{ end }}
{{- end }}

{{- define "smsledger.profilesPath" -}}
/etc/smsledger/connections.toml
{{- end }}

{{/* Pod annotation that rolls the pods when the profiles' TOML text changes. */}}
{{- define "smsledger.profilesChecksum" -}}
{{- with (.Values.connectionProfiles | default dict).toml }}
checksum/connection-profiles: {{ sha256sum . }}
{{- end }}
{{- end }}

{{- define "smsledger.profilesVolumeMount" -}}
- name: connection-profiles
  mountPath: {{ include "smsledger.profilesPath" . | dir }}
  readOnly: true
{{- end }}

{{- define "smsledger.profilesVolume" -}}
- name: connection-profiles
{{- with .Values.connectionProfiles.existingSecret }}
  secret:
    secretName: {{ . }}
    items:
      - key: connections.toml
        path: connections.toml
{{- else }}
  configMap:
    name: {{ include "smsledger.fullname" . }}-connections
{{- end }}
{{- end }}

{{/*
Environment of one component's container: every non-null setting, the
secret settings and the extra variables. Pass (dict "root" $ "component"
.Values.server "nats" false "profiles" true); "profiles" true names a pod
that mounts the connection profiles and so gets SMSLEDGER_CONNECTIONS_FILE.
*/}}
{{- define "smsledger.env" -}}
{{- $settings := include "smsledger.componentSettings" . | fromYaml }}
{{- $mounted := include "smsledger.profiles" .root }}
{{- if and $mounted (not (kindIs "invalid" $settings.connectionsFile)) }}
{{- fail "settings.connectionsFile must stay null when connectionProfiles is set: the chart points it at the mounted file" }}
{{- end }}
{{- range $key := keys $settings | sortAlpha }}
{{- $value := get $settings $key }}
{{- if not (kindIs "invalid" $value) }}
- name: SMSLEDGER_{{ $key | snakecase | upper }}
  value: {{ include "smsledger.envValue" $value | quote }}
{{- end }}
{{- end }}
{{- if and $mounted .profiles }}
- name: SMSLEDGER_CONNECTIONS_FILE
  value: {{ include "smsledger.profilesPath" .root | quote }}
{{- end }}
{{- range $key, $ref := .root.Values.secretSettings }}
{{- if or (ne $key "natsUrl") $.nats }}
- name: SMSLEDGER_{{ $key | snakecase | upper }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.secretName }}
      key: {{ $ref.key }}
{{- end }}
{{- end }}
{{- with .root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Most PostgreSQL connections one pod of a component opens. */}}
{{- define "smsledger.podConnections" -}}
{{- $settings := include "smsledger.componentSettings" . | fromYaml }}
{{- add (int64 $settings.dbPoolSize) (int64 $settings.dbMaxOverflow) (int64 .component.extraConnections) }}
{{- end }}

{{/*
Connection budget. At their maximum counts the pods may open

  server:    (autoscaling.maxReplicas, or replicas) x (dbPoolSize + dbMaxOverflow + extraConnections)
  relay:     replicas x (dbPoolSize + dbMaxOverflow + extraConnections)
  projector: replicas x (dbPoolSize + dbMaxOverflow + extraConnections)
  migration: dbPoolSize + dbMaxOverflow (it runs while the old pods still serve)

and the sum must not exceed database.maxConnections - database.reservedConnections.
Rendering fails with the arithmetic when it does.
*/}}
{{- define "smsledger.connectionBudget" -}}
{{- $root := . }}
{{- $server := .Values.server }}
{{- $serverPods := int64 $server.replicas }}
{{- if $server.autoscaling.enabled }}{{ $serverPods = int64 $server.autoscaling.maxReplicas }}{{ end }}
{{- $perServer := include "smsledger.podConnections" (dict "root" $root "component" $server) | int64 }}
{{- $total := mul $serverPods $perServer }}
{{- $detail := list (printf "server %d x %d" $serverPods $perServer) }}
{{- if .Values.relay.enabled }}
{{- $perRelay := include "smsledger.podConnections" (dict "root" $root "component" .Values.relay) | int64 }}
{{- $total = add $total (mul (int64 .Values.relay.replicas) $perRelay) }}
{{- $detail = append $detail (printf "relay %d x %d" (int64 .Values.relay.replicas) $perRelay) }}
{{- end }}
{{- if .Values.projector.enabled }}
{{- $perProjector := include "smsledger.podConnections" (dict "root" $root "component" .Values.projector) | int64 }}
{{- $total = add $total (mul (int64 .Values.projector.replicas) $perProjector) }}
{{- $detail = append $detail (printf "projector %d x %d" (int64 .Values.projector.replicas) $perProjector) }}
{{- end }}
{{- if .Values.migration.enabled }}
{{- $perMigration := add (int64 .Values.settings.dbPoolSize) (int64 .Values.settings.dbMaxOverflow) }}
{{- $total = add $total $perMigration }}
{{- $detail = append $detail (printf "migration %d" $perMigration) }}
{{- end }}
{{- $limit := sub (int64 .Values.database.maxConnections) (int64 .Values.database.reservedConnections) }}
{{- if gt $total $limit }}
{{- fail (printf "PostgreSQL connections at full scale are %d (%s), more than database.maxConnections %d - database.reservedConnections %d = %d: lower settings.dbPoolSize, settings.dbMaxOverflow or server.autoscaling.maxReplicas, or raise database.maxConnections" $total (join " + " $detail) (int64 .Values.database.maxConnections) (int64 .Values.database.reservedConnections) $limit) }}
{{- end }}
{{- end }}

{{/* Writable /tmp for read-only containers. */}}
{{- define "smsledger.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end }}
