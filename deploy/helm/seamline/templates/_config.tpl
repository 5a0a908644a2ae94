{{/*
The Seamline configuration file (seamline.yaml) one component reads, rendered from values.
Call with (dict "root" $ "component" "classifier" | "review"); the migrations read the classifier's.

The two differ only where least privilege says so: each logs in to the broker as its own user with its own
password file, and only the classifier gets the gRPC server's TLS files and vLLM's token. Every path is absolute (paths in the
file resolve against the file's folder); secrets appear only as {file: ...} or {env: ...} references.
Scalars go through toJson so that values keep their type (Helm reads every number as a float).
*/}}
{{- define "seamline.configBase" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $component := .component -}}
{{- $mqttUser := index $v.mqtt $component -}}
{{- if not $v.lines -}}
{{- fail "lines: list at least one line this deployment serves ({siteId, lineId})" -}}
{{- end -}}
mqtt:
  url: {{ include "seamline.mqttUrl" $root | toJson }}
  topic_root: {{ $v.mqtt.topicRoot | toJson }}
  client_id_prefix: {{ $v.mqtt.clientIdPrefix | toJson }}
  protocol: {{ $v.mqtt.protocol | toString | toJson }}
  keepalive_s: {{ $v.mqtt.keepaliveS | toJson }}
  username: {{ $mqttUser.username | toJson }}
  {{- if $v.mqtt.existingSecret }}
  password: {file: /run/secrets/seamline/mqtt-password}
  {{- end }}
  {{- if $v.mqtt.tls.enabled }}
  tls: {ca_file: /etc/seamline/tls/mqtt/ca.crt}
  {{- end }}
grpc:
  listen_address: {{ printf "0.0.0.0:%v" $v.classifier.grpc.port | toJson }}
  max_message_bytes: {{ $v.classifier.grpc.maxMessageBytes | toJson }}
  max_connection_age_s: {{ $v.classifier.grpc.maxConnectionAgeS | toJson }}
  max_connection_age_grace_s: {{ $v.classifier.grpc.maxConnectionAgeGraceS | toJson }}
  {{- if and (eq $component "classifier") $v.classifier.grpc.tls.enabled }}
  tls:
    cert_file: /etc/seamline/tls/grpc/tls.crt
    key_file: /etc/seamline/tls/grpc/tls.key
    {{- if $v.classifier.grpc.tls.mutual }}
    ca_file: /etc/seamline/tls/grpc/ca.crt
    {{- end }}
  {{- end }}
storage:
  data_dir: /var/lib/seamline
  {{- if $v.storage.retentionDays }}
  retention_days: {{ $v.storage.retentionDays | toJson }}
  {{- end }}
logging:
  level: {{ $v.logging.level | toJson }}
  json_lines: {{ $v.logging.jsonLines | toJson }}
cloud:
  lines:
    {{- range $v.lines }}
    - {site_id: {{ .siteId | toJson }}, line_id: {{ .lineId | toJson }}}
    {{- end }}
  audit_url: {{ include "seamline.auditUrl" $root | toJson }}
  crop_store: {{ include "seamline.cropStore" $root | toJson }}
  # The migrations Job brings the schema to head before the services start; they only check it.
  migrate_on_start: false
  health_address: {{ printf "0.0.0.0:%v" $v.classifier.healthPort | toJson }}
  metrics_address: {{ printf "0.0.0.0:%v" $v.classifier.metricsPort | toJson }}
  shutdown_grace_s: {{ $v.classifier.shutdownGraceS | toJson }}
  max_garments_in_flight: {{ $v.classifier.maxGarmentsInFlight | toJson }}
  classifier:
    base_url: {{ include "seamline.classifierBaseUrl" $root }}
    model: {{ $v.classifier.model | toJson }}
    max_concurrency: {{ $v.classifier.maxConcurrency | toJson }}
    timeout_s: {{ $v.classifier.timeoutS | toJson }}
    {{- if and (eq $component "classifier") $v.classifier.apiKeySecret }}
    api_key: {env: SEAMLINE_CLASSIFIER_API_KEY}
    {{- end }}
  routing: {{ $v.classifier.routing | toJson }}
review:
  host: 0.0.0.0
  port: {{ $v.review.port | toJson }}
  lease_minutes: {{ $v.review.leaseMinutes | toJson }}
  session_hours: {{ $v.review.sessionHours | toJson }}
  language: {{ $v.review.language | toJson }}
  secure_cookies: {{ include "seamline.secureCookies" $root }}
{{- end -}}

{{/* The file as it is written: the rendering above with values.extraConfig merged over it. */}}
{{- define "seamline.config" -}}
{{- $config := include "seamline.configBase" . | fromYaml -}}
{{- if hasKey $config "Error" -}}
{{- fail (printf "the rendered Seamline configuration is not YAML: %s" $config.Error) -}}
{{- end -}}
{{- $config = mustMergeOverwrite $config (deepCopy .root.Values.extraConfig) -}}
{{- $reader := dict "classifier" "the classifier service and its migrations" "review" "the review console" -}}
# Seamline configuration for {{ index $reader .component }}, rendered from the Helm
# chart's values: change the values (or extraConfig), not this file. `seamline validate-config` checks it.
{{ toYaml $config }}
{{- end -}}
