{{/*
Names, labels, the image, and the endpoints derived from values. Pod-level pieces the three Seamline workloads
share (security contexts, environment, volumes) are in _pod.tpl; the configuration file is in _config.tpl.
*/}}

{{- define "seamline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-seamline, or the release name alone when it already says seamline. */}}
{{- define "seamline.fullname" -}}
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

{{/* The name of one part: (dict "root" $ "component" "classifier") -> <fullname>-classifier. */}}
{{- define "seamline.componentName" -}}
{{- printf "%s-%s" (include "seamline.fullname" .root | trunc 50 | trimSuffix "-") .component -}}
{{- end -}}

{{- define "seamline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "seamline.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "seamline.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "seamline.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: seamline
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}

{{/* The Seamline image: repository@digest, else repository:tag (the tag defaults to the appVersion). */}}
{{- define "seamline.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if eq $tag "latest" -}}
{{- fail "image.tag: pin a version (the chart's appVersion by default), not latest" -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "seamline.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "seamline.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The EMQX chart's Service name for this release (its own emqx.fullname rule). */}}
{{- define "seamline.emqxFullname" -}}
{{- if .Values.emqx.fullnameOverride -}}
{{- .Values.emqx.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default "emqx" .Values.emqx.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* mqtt.url, else this release's EMQX (mqtts on 8883 when mqtt.tls is on). */}}
{{- define "seamline.mqttUrl" -}}
{{- if .Values.mqtt.url -}}
{{- .Values.mqtt.url -}}
{{- else if .Values.emqx.enabled -}}
{{- if .Values.mqtt.tls.enabled -}}
{{- printf "mqtts://%s:8883" (include "seamline.emqxFullname" .) -}}
{{- else -}}
{{- printf "mqtt://%s:1883" (include "seamline.emqxFullname" .) -}}
{{- end -}}
{{- else -}}
{{- fail "mqtt.url: name the site broker (mqtt://host:1883 or mqtts://host:8883), or turn emqx.enabled on" -}}
{{- end -}}
{{- end -}}

{{/* cloud.classifier.base_url as JSON (a URL or a list): classifier.baseUrl, else the vLLM this release runs. */}}
{{- define "seamline.classifierBaseUrl" -}}
{{- if and .Values.vllm.enabled .Values.vllmStack.enabled -}}
{{- fail "vllm.enabled and vllmStack.enabled: turn one of them off (both would serve the classifier)" -}}
{{- end -}}
{{- if .Values.classifier.baseUrl -}}
{{- toJson .Values.classifier.baseUrl -}}
{{- else if .Values.vllmStack.enabled -}}
{{- $port := 80 -}}
{{- with .Values.vllmStack.routerSpec -}}{{- $port = default 80 .servicePort -}}{{- end -}}
{{- printf "http://%s-router-service:%v/v1" .Release.Name $port | toJson -}}
{{- else if .Values.vllm.enabled -}}
{{- printf "http://%s:%v/v1" (include "seamline.componentName" (dict "root" . "component" "vllm")) .Values.vllm.port | toJson -}}
{{- else -}}
{{- fail "classifier.baseUrl: with vllm.enabled and vllmStack.enabled off, name the vLLM server(s) to use" -}}
{{- end -}}
{{- end -}}

{{/* The audit store's SQLAlchemy URL: no password in it (libpq reads PGPASSWORD). */}}
{{- define "seamline.auditUrl" -}}
{{- $pg := .Values.postgres -}}
{{- printf "postgresql+psycopg://%s@%s:%v/%s?sslmode=%s" ($pg.user | urlquery) $pg.host $pg.port $pg.database $pg.sslMode -}}
{{- end -}}

{{/* The crop store's URL: s3://bucket/prefix?region=...[&endpoint=...] (credentials never in it). */}}
{{- define "seamline.cropStore" -}}
{{- $s3 := .Values.s3 -}}
{{- $url := printf "s3://%s/%s?region=%s" $s3.bucket (trimAll "/" $s3.prefix) $s3.region -}}
{{- if $s3.endpoint -}}
{{- $url = printf "%s&endpoint=%s" $url $s3.endpoint -}}
{{- end -}}
{{- $url -}}
{{- end -}}

{{/* review.secure_cookies: "auto" means on exactly when the ingress terminates TLS. */}}
{{- define "seamline.secureCookies" -}}
{{- $setting := .Values.review.secureCookies -}}
{{- if eq (toString $setting) "auto" -}}
{{- and .Values.review.ingress.enabled (ne .Values.review.ingress.tls.secretName "") | toJson -}}
{{- else -}}
{{- $setting | toJson -}}
{{- end -}}
{{- end -}}

{{/* Seconds Kubernetes waits after SIGTERM: the service's own drain plus a margin. */}}
{{- define "seamline.classifierTerminationGrace" -}}
{{- add (ceil .Values.classifier.shutdownGraceS | int) .Values.classifier.terminationMarginS -}}
{{- end -}}
