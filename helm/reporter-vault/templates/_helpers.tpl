{{/* Names */}}
{{- define "rv.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rv.fullname" -}}
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

{{- define "rv.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Standard labels (https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/) */}}
{{- define "rv.labels" -}}
helm.sh/chart: {{ include "rv.chart" . }}
{{ include "rv.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: reporter-vault
{{- end }}

{{- define "rv.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rv.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "rv.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rv.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* image reference: repository@digest, else repository:tag (tag defaults to appVersion) */}}
{{- define "rv.imageRef" -}}
{{- if .digest }}
{{- printf "%s@%s" .repository .digest }}
{{- else }}
{{- printf "%s:%s" .repository (.tag | default .appVersion) }}
{{- end }}
{{- end }}

{{- define "rv.image" -}}
{{- include "rv.imageRef" (merge (dict "appVersion" .Chart.AppVersion) .Values.image) }}
{{- end }}

{{- define "rv.secretsInitImage" -}}
{{- include "rv.imageRef" (merge (dict "appVersion" "latest") .Values.secretsInit.image) }}
{{- end }}

{{/* Database mode: external | cnpg | sqlite */}}
{{- define "rv.dbMode" -}}
{{- if .Values.database.cloudnativepg.enabled }}cnpg
{{- else if .Values.database.external.existingSecret }}external
{{- else }}sqlite
{{- end }}
{{- end }}

{{- define "rv.cnpgClusterName" -}}
{{- default (printf "%s-pg" (include "rv.fullname" .)) .Values.database.cloudnativepg.clusterName | trunc 50 | trimSuffix "-" }}
{{- end }}

{{- define "rv.sharedData" -}}
{{- if and .Values.persistence.enabled (has "ReadWriteMany" .Values.persistence.accessModes) }}true{{ end }}
{{- end }}

{{- define "rv.replicasAboveOne" -}}
{{- if or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1) }}true{{ end }}
{{- end }}

{{/* Paths inside the container */}}
{{- define "rv.dataDir" -}}/var/lib/reporter-vault{{- end }}
{{- define "rv.secretsDir" -}}/run/secrets/reporter-vault{{- end }}
{{- define "rv.secretsInDir" -}}/run/secrets-in{{- end }}
{{- define "rv.policiesDir" -}}
{{- if .Values.policies.fromImage }}/app/policies{{ else }}/etc/reporter-vault/policies{{ end }}
{{- end }}

{{/*
The secret files the service reads, as a JSON list of
{file, secret, key, env, mode, dest}. `file` is the name inside the projected volume; `dest`
is where the init container installs it; `env` the variable that names it (empty for the
keyring, which the service finds in its data directory).
*/}}
{{- define "rv.secretFiles" -}}
{{- $out := list }}
{{- $sd := include "rv.secretsDir" . }}
{{- $mode := include "rv.dbMode" . }}
{{- if eq $mode "external" }}
{{- $out = append $out (dict "file" "database-url" "secret" .Values.database.external.existingSecret "key" .Values.database.external.key "env" "RV_DATABASE_URL_FILE" "mode" "0400" "dest" (printf "%s/database-url" $sd)) }}
{{- else if eq $mode "cnpg" }}
{{- $out = append $out (dict "file" "database-url" "secret" (printf "%s-app" (include "rv.cnpgClusterName" .)) "key" "uri" "env" "RV_DATABASE_URL_FILE" "mode" "0400" "dest" (printf "%s/database-url" $sd)) }}
{{- end }}
{{- if eq .Values.keys.provider "local" }}
{{- with .Values.keys.local.passphraseSecret }}
{{- if .name }}
{{- $out = append $out (dict "file" "keyring-passphrase" "secret" .name "key" .key "env" "RV_KEYRING_PASSPHRASE_FILE" "mode" "0400" "dest" (printf "%s/keyring-passphrase" $sd)) }}
{{- end }}
{{- end }}
{{- with .Values.keys.local.keyringSecret }}
{{- if .name }}
{{- $out = append $out (dict "file" "keyring.age" "secret" .name "key" .key "env" "" "mode" "0600" "dest" (printf "%s/keyring.age" (include "rv.dataDir" $)) "seed" true) }}
{{- end }}
{{- end }}
{{- else if eq .Values.keys.provider "pkcs11" }}
{{- with .Values.keys.pkcs11.pinSecret }}
{{- if .name }}
{{- $out = append $out (dict "file" "pkcs11-pin" "secret" .name "key" .key "env" "RV_PKCS11_PIN_FILE" "mode" "0400" "dest" (printf "%s/pkcs11-pin" $sd)) }}
{{- end }}
{{- end }}
{{- end }}
{{- with .Values.notify.webhookSecret }}
{{- if .existingSecret }}
{{- $out = append $out (dict "file" "notify-webhook-secret" "secret" .existingSecret "key" .key "env" "RV_NOTIFY_WEBHOOK_SECRET_FILE" "mode" "0400" "dest" (printf "%s/notify-webhook-secret" $sd)) }}
{{- end }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* Refuses values that would render a broken or unsafe deployment. */}}
{{- define "rv.validate" -}}
{{- $mode := include "rv.dbMode" . }}
{{- if and .Values.database.cloudnativepg.enabled .Values.database.external.existingSecret }}
{{- fail "database: set either database.external.existingSecret or database.cloudnativepg.enabled, not both" }}
{{- end }}
{{- if and (eq $mode "sqlite") (include "rv.replicasAboveOne" .) }}
{{- fail "database: SQLite is not for replicas: replicaCount > 1 or autoscaling.enabled needs PostgreSQL (set database.external.existingSecret or database.cloudnativepg.enabled=true)" }}
{{- end }}
{{- if and (eq $mode "sqlite") (include "rv.sharedData" .) }}
{{- fail "persistence: SQLite needs a ReadWriteOnce or ReadWriteOncePod volume, not ReadWriteMany (its locking is not safe on shared filesystems)" }}
{{- end }}
{{- if and (ne $mode "sqlite") (not .Values.persistence.enabled) }}
{{- fail "persistence.enabled is required with PostgreSQL: the data directory holds state the database does not, the keyring (key rotation rewrites keyring.age) and the erasure ledger (a restore needs it); an emptyDir would lose both with the pod" }}
{{- end }}
{{- if and (ne $mode "sqlite") (include "rv.replicasAboveOne" .) (not (include "rv.sharedData" .)) }}
{{- fail "persistence.accessModes must include ReadWriteMany for more than one replica: every replica must read and write the same keyring.age and erasure ledger" }}
{{- end }}
{{- if and (ne $mode "sqlite") (eq .Values.keys.provider "local") }}
{{- if not .Values.keys.local.keyringSecret.name }}
{{- fail "keys.local.keyringSecret.name is required with PostgreSQL: it seeds the data volume with keyring.age, so the store is never paired with a keyring made inside a pod" }}
{{- end }}
{{- if not .Values.keys.local.passphraseSecret.name }}
{{- fail "keys.local.passphraseSecret.name is required with PostgreSQL: the service refuses an identity-file keyring there" }}
{{- end }}
{{- end }}
{{- if eq .Values.keys.provider "pkcs11" }}
{{- if not .Values.keys.pkcs11.module }}{{ fail "keys.pkcs11.module is required with keys.provider=pkcs11" }}{{ end }}
{{- if not .Values.keys.pkcs11.tokenLabel }}{{ fail "keys.pkcs11.tokenLabel is required with keys.provider=pkcs11" }}{{ end }}
{{- if not .Values.keys.pkcs11.pinSecret.name }}{{ fail "keys.pkcs11.pinSecret.name is required with keys.provider=pkcs11" }}{{ end }}
{{- end }}
{{- if and .Values.policies.fromImage .Values.policies.files }}
{{- fail "policies: files are given but policies.fromImage is true; set policies.fromImage=false to serve them" }}
{{- end }}
{{- if and (not .Values.policies.fromImage) (not .Values.policies.files) }}
{{- fail "policies: policies.fromImage is false but policies.files is empty; the service would start with no reward policy" }}
{{- end }}
{{- if le (int .Values.terminationGracePeriodSeconds) (add .Values.lifecycle.preStopSleepSeconds .Values.lifecycle.drainSeconds | int) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed lifecycle.preStopSleepSeconds + lifecycle.drainSeconds (%d): the kubelet would kill the pod mid-drain" (int .Values.terminationGracePeriodSeconds) (add .Values.lifecycle.preStopSleepSeconds .Values.lifecycle.drainSeconds | int)) }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- if and .Values.networkPolicy.enabled (not .Values.networkPolicy.ingress.from) }}
{{- fail "networkPolicy.ingress.from is empty: no client could reach the service; name the namespaces or pods of the case system and finance" }}
{{- end }}
{{- if and .Values.networkPolicy.enabled (eq $mode "external") (not .Values.networkPolicy.egress.database.to) }}
{{- fail "networkPolicy.egress.database.to is empty: the service could not reach its external database" }}
{{- end }}
{{- if and .Values.networkPolicy.enabled .Values.notify.webhookUrl (not .Values.networkPolicy.egress.webhook.to) }}
{{- fail "networkPolicy.egress.webhook.to is empty: the service could not reach notify.webhookUrl" }}
{{- end }}
{{- if and .Values.networkPolicy.enabled .Values.otel.endpoint (not .Values.networkPolicy.egress.otlp.to) }}
{{- fail "networkPolicy.egress.otlp.to is empty: the service could not reach otel.endpoint" }}
{{- end }}
{{- if and .Values.metrics.separateListener.enabled (eq (int .Values.metrics.separateListener.port) (int .Values.containerPorts.http)) }}
{{- fail "metrics.separateListener.port must differ from containerPorts.http" }}
{{- end }}
{{- end }}

{{/* The pod-level security context (fixed; only ids are values). */}}
{{- define "rv.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
# Only re-own the volume when its root does not match: a recursive chmod would make the
# SQLite database and the keyring group-readable, and the service refuses to open those.
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "rv.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The service's environment, shared by the Deployment and the migration Job: (dict "root" . "job" bool). */}}
{{- define "rv.env" -}}
{{- $root := .root }}
{{- $job := .job }}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: RV_LISTEN
  value: {{ printf "%s:%d" ($root.Values.bindAddress | toString) (int $root.Values.containerPorts.http) | quote }}
{{- if $root.Values.metrics.separateListener.enabled }}
- name: RV_METRICS_LISTEN
  value: {{ printf "%s:%d" ($root.Values.bindAddress | toString) (int $root.Values.metrics.separateListener.port) | quote }}
{{- end }}
- name: RV_DATA_DIR
  value: {{ include "rv.dataDir" $root | quote }}
- name: RV_POLICIES
  {{- /* The Job runs before the policies ConfigMap exists: it reads the image's copy. */}}
  value: {{ ternary "/app/policies" (include "rv.policiesDir" $root) $job | quote }}
- name: RV_LOG_FORMAT
  value: {{ $root.Values.config.logFormat | quote }}
- name: RV_CHECKPOINT_EVERY_EVENTS
  value: {{ $root.Values.config.checkpointEveryEvents | int64 | quote }}
- name: RV_CHECKPOINT_EVERY_SECONDS
  value: {{ $root.Values.config.checkpointEverySeconds | int64 | quote }}
{{- with $root.Values.config.disclosureQuorum }}
- name: RV_DISCLOSURE_QUORUM
  value: {{ . | quote }}
{{- end }}
{{- if $root.Values.config.retentionYears }}
- name: RV_RETENTION_YEARS
  value: {{ $root.Values.config.retentionYears | int64 | quote }}
{{- end }}
{{- with $root.Values.config.logOrigin }}
- name: RV_LOG_ORIGIN
  value: {{ . | quote }}
{{- end }}
{{- if $root.Values.config.maxBodyBytes }}
- name: RV_MAX_BODY_BYTES
  value: {{ $root.Values.config.maxBodyBytes | int64 | quote }}
{{- end }}
{{- if eq (include "rv.dbMode" $root) "sqlite" }}
- name: RV_SQLITE_SYNCHRONOUS
  value: {{ $root.Values.config.sqliteSynchronous | quote }}
{{- end }}
- name: RV_KEY_PROVIDER
  value: {{ $root.Values.keys.provider | quote }}
{{- if eq $root.Values.keys.provider "pkcs11" }}
- name: RV_PKCS11_MODULE
  value: {{ $root.Values.keys.pkcs11.module | quote }}
- name: RV_PKCS11_TOKEN_LABEL
  value: {{ $root.Values.keys.pkcs11.tokenLabel | quote }}
{{- with $root.Values.keys.pkcs11.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}
{{- with $root.Values.notify.webhookUrl }}
- name: RV_NOTIFY_WEBHOOK_URL
  value: {{ . | quote }}
{{- end }}
{{- range (include "rv.secretFiles" $root | fromJsonArray) }}
{{- if .env }}
- name: {{ .env }}
  value: {{ .dest | quote }}
{{- end }}
{{- end }}
{{- with $root.Values.otel.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
- name: OTEL_SERVICE_NAME
  value: {{ $root.Values.otel.serviceName | quote }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: "k8s.namespace.name=$(POD_NAMESPACE),k8s.pod.name=$(POD_NAME)"
{{- with $root.Values.config.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The init container that installs each secret file as a private file of the service user.
Kubernetes mounts Secret files root-owned, and with fsGroup it forces them to 0440
(kubernetes/kubernetes#57923); the service refuses any secret or keyring file with group or
other permission bits. The copies live in a memory-backed emptyDir, never on node disk
(the keyring copy goes to the data directory, where the service expects it).
*/}}
{{- define "rv.initContainers" -}}
{{- $root := .root }}
{{- $persistent := and (not .job) $root.Values.persistence.enabled }}
{{- $files := include "rv.secretFiles" $root | fromJsonArray }}
{{- if $files }}
- name: install-secrets
  image: {{ include "rv.secretsInitImage" $root | quote }}
  imagePullPolicy: {{ $root.Values.secretsInit.image.pullPolicy }}
  command:
    - /bin/sh
    - -ec
    - |
      umask 077
      {{- range $files }}
      {{- if and .seed $persistent }}
      # Seed only: key rotation rewrites this file on the data volume; never overwrite it.
      [ -e {{ .dest | quote }} ] || install -m {{ .mode }} {{ printf "%s/%s" (include "rv.secretsInDir" $root) .file | quote }} {{ .dest | quote }}
      {{- else }}
      rm -f {{ .dest | quote }}
      install -m {{ .mode }} {{ printf "%s/%s" (include "rv.secretsInDir" $root) .file | quote }} {{ .dest | quote }}
      {{- end }}
      {{- end }}
  securityContext:
    {{- include "rv.containerSecurityContext" $root | nindent 4 }}
  resources:
    {{- toYaml $root.Values.secretsInit.resources | nindent 4 }}
  volumeMounts:
    - name: secrets-in
      mountPath: {{ include "rv.secretsInDir" $root }}
      readOnly: true
    - name: secrets
      mountPath: {{ include "rv.secretsDir" $root }}
    - name: data
      mountPath: {{ include "rv.dataDir" $root }}
{{- end }}
{{- end }}

{{/* Volume mounts of the service container (and the migration Job). */}}
{{- define "rv.volumeMounts" -}}
{{- $root := .root }}
{{- $job := .job }}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: {{ include "rv.dataDir" $root }}
{{- if (include "rv.secretFiles" $root | fromJsonArray) }}
- name: secrets
  mountPath: {{ include "rv.secretsDir" . }}
  readOnly: true
{{- end }}
{{- if and (not $job) (not $root.Values.policies.fromImage) }}
- name: policies
  mountPath: {{ include "rv.policiesDir" $root }}
  readOnly: true
{{- end }}
{{- if and (eq $root.Values.keys.provider "pkcs11") $root.Values.keys.pkcs11.moduleVolume }}
- name: pkcs11-module
  mountPath: {{ $root.Values.keys.pkcs11.moduleMountPath }}
  readOnly: true
{{- end }}
{{- with $root.Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Volumes. The Job (job=true) gets an emptyDir data directory and no policies ConfigMap. */}}
{{- define "rv.volumes" -}}
{{- $root := .root }}
{{- $files := include "rv.secretFiles" $root | fromJsonArray }}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if and (not .job) $root.Values.persistence.enabled }}
- name: data
  persistentVolumeClaim:
    claimName: {{ $root.Values.persistence.existingClaim | default (printf "%s-data" (include "rv.fullname" $root)) }}
{{- else }}
- name: data
  emptyDir:
    sizeLimit: 256Mi
{{- end }}
{{- if $files }}
- name: secrets
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
- name: secrets-in
  projected:
    # Kubernetes turns this into 0440 root:fsGroup; install-secrets makes the private copies.
    defaultMode: 0400
    sources:
      {{- range $files }}
      - secret:
          name: {{ .secret }}
          items:
            - key: {{ .key }}
              path: {{ .file }}
      {{- end }}
{{- end }}
{{- if and (not .job) (not $root.Values.policies.fromImage) }}
- name: policies
  configMap:
    name: {{ include "rv.fullname" $root }}-policies
    defaultMode: 0444
{{- end }}
{{- if and (eq $root.Values.keys.provider "pkcs11") $root.Values.keys.pkcs11.moduleVolume }}
- name: pkcs11-module
  {{- toYaml $root.Values.keys.pkcs11.moduleVolume | nindent 2 }}
{{- end }}
{{- with $root.Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}
