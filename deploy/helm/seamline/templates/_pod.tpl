{{/*
Pod pieces the classifier, the review console and the migrations Job share. Each takes
(dict "root" $ "component" "classifier" | "review" | "migrations").
*/}}

{{- define "seamline.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurity.runAsUser }}
runAsGroup: {{ .Values.podSecurity.runAsGroup }}
fsGroup: {{ .Values.podSecurity.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Read-only root file system: the process writes only to /tmp and the data dir (emptyDirs). */}}
{{- define "seamline.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/*
Environment: caches and temp files under /tmp, and every secret by reference (secretKeyRef), never a value.
The database password goes to libpq as PGPASSWORD; S3 keys to boto3; the vLLM token to the configuration's
{env: SEAMLINE_CLASSIFIER_API_KEY}.
*/}}
{{- define "seamline.env" -}}
{{- $v := .root.Values -}}
- name: HOME
  value: /tmp
- name: TMPDIR
  value: /tmp
- name: XDG_CACHE_HOME
  value: /tmp/.cache
- name: SEAMLINE_CACHE_DIR
  value: /tmp/seamline-cache
- name: MPLCONFIGDIR
  value: /tmp/matplotlib
- name: PYTHONUNBUFFERED
  value: "1"
{{- if $v.postgres.existingSecret }}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $v.postgres.existingSecret }}
      key: {{ $v.postgres.passwordKey }}
{{- end }}
{{- if and (ne .component "migrations") $v.s3.existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $v.s3.existingSecret }}
      key: {{ $v.s3.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $v.s3.existingSecret }}
      key: {{ $v.s3.secretAccessKeyKey }}
{{- end }}
{{- if and (eq .component "classifier") $v.classifier.apiKeySecret }}
- name: SEAMLINE_CLASSIFIER_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $v.classifier.apiKeySecret }}
      key: {{ $v.classifier.apiKeyKey }}
{{- end }}
{{- end -}}

{{/* The configuration file always sits at /etc/seamline/seamline.yaml; secrets and TLS files beside it. */}}
{{- define "seamline.volumeMounts" -}}
{{- $v := .root.Values -}}
- name: config
  mountPath: /etc/seamline/seamline.yaml
  subPath: seamline.yaml
  readOnly: true
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /var/lib/seamline
{{- if ne .component "migrations" }}
{{- if $v.mqtt.existingSecret }}
- name: mqtt-password
  mountPath: /run/secrets/seamline
  readOnly: true
{{- end }}
{{- if $v.mqtt.tls.enabled }}
- name: mqtt-tls
  mountPath: /etc/seamline/tls/mqtt
  readOnly: true
{{- end }}
{{- end }}
{{- if and (eq .component "classifier") $v.classifier.grpc.tls.enabled }}
- name: grpc-tls
  mountPath: /etc/seamline/tls/grpc
  readOnly: true
{{- end }}
{{- end -}}

{{- define "seamline.volumes" -}}
{{- $v := .root.Values -}}
- name: config
  configMap:
    {{- if eq .component "migrations" }}
    name: {{ include "seamline.componentName" (dict "root" .root "component" "migrations") }}
    items:
      - {key: classifier.yaml, path: seamline.yaml}
    {{- else }}
    name: {{ include "seamline.fullname" .root }}
    items:
      - {key: {{ printf "%s.yaml" .component }}, path: seamline.yaml}
    {{- end }}
- name: tmp
  emptyDir:
    sizeLimit: 1Gi
- name: data
  emptyDir:
    sizeLimit: 1Gi
{{- if ne .component "migrations" }}
{{- if $v.mqtt.existingSecret }}
- name: mqtt-password
  secret:
    secretName: {{ $v.mqtt.existingSecret }}
    defaultMode: 288  # 0440: the user's group (fsGroup) reads it
    items:
      - key: {{ (index $v.mqtt .component).passwordKey }}
        path: mqtt-password
{{- end }}
{{- if $v.mqtt.tls.enabled }}
- name: mqtt-tls
  secret:
    secretName: {{ required "mqtt.tls.caSecret: name the Secret holding the broker's CA" $v.mqtt.tls.caSecret }}
    defaultMode: 288
    items:
      - {key: {{ $v.mqtt.tls.caKey }}, path: ca.crt}
{{- end }}
{{- end }}
{{- if and (eq .component "classifier") $v.classifier.grpc.tls.enabled }}
- name: grpc-tls
  secret:
    secretName: {{ required "classifier.grpc.tls.existingSecret: name the kubernetes.io/tls Secret for the edge port" $v.classifier.grpc.tls.existingSecret }}
    defaultMode: 288
    items:
      - {key: tls.crt, path: tls.crt}
      - {key: tls.key, path: tls.key}
      {{- if $v.classifier.grpc.tls.mutual }}
      - {key: ca.crt, path: ca.crt}
      {{- end }}
{{- end }}
{{- end -}}
