{{/* Chart name, cut to 63 characters (a DNS label). */}}
{{- define "arcray.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, cut to 63 characters. */}}
{{- define "arcray.fullname" -}}
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

{{/* Name of a scheduled object: "<fullname>-<suffix>" within RayCronJob's 36 characters, so the
     RayJobs it creates ("<name>-<unix minutes>") stay within RayJob's 47. dict: root, suffix */}}
{{- define "arcray.scheduleName" -}}
{{- $max := int (sub 35 (len .suffix)) }}
{{- printf "%s-%s" (include "arcray.fullname" .root | trunc $max | trimSuffix "-") .suffix }}
{{- end }}

{{/* Name of a RayJob: "<fullname>-<suffix>" within 47 characters. dict: root, suffix */}}
{{- define "arcray.rayJobName" -}}
{{- $max := int (sub 46 (len .suffix)) }}
{{- printf "%s-%s" (include "arcray.fullname" .root | trunc $max | trimSuffix "-") .suffix }}
{{- end }}

{{- define "arcray.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "arcray.selectorLabels" -}}
app.kubernetes.io/name: {{ include "arcray.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "arcray.labels" -}}
helm.sh/chart: {{ include "arcray.chart" . }}
{{ include "arcray.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
arcray.io/ray-version: {{ .Values.rayVersion | quote }}
{{- end }}

{{- define "arcray.image" -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag }}
{{- end }}

{{- define "arcray.claimName" -}}
{{- if .Values.storage.create }}{{ include "arcray.fullname" . }}-data{{ else }}{{ required "storage.existingClaim is required when storage.create is false" .Values.storage.existingClaim }}{{ end }}
{{- end }}

{{/* Credentials by Secret name only: the user as an env var, the password as a mounted file. */}}
{{- define "arcray.credentialEnv" -}}
- name: ARCRAY_MAILMAN_USER
  valueFrom: {secretKeyRef: {name: {{ .Values.credentials.mailmanSecret | quote }}, key: username}}
- name: ARCRAY_MAILMAN_PASSWORD_FILE
  value: /var/run/secrets/arcray/mailman/password
- name: ARCRAY_SAS_USER
  valueFrom: {secretKeyRef: {name: {{ .Values.credentials.sasSecret | quote }}, key: username}}
- name: ARCRAY_SAS_PASSWORD_FILE
  value: /var/run/secrets/arcray/sas/password
- name: ARCRAY_DATA_ROOT
  value: {{ .Values.storage.root | quote }}
{{- end }}

{{- define "arcray.volumes" -}}
- name: data
  persistentVolumeClaim: {claimName: {{ include "arcray.claimName" . | quote }}}
- name: dshm
  emptyDir: {medium: Memory, sizeLimit: {{ .Values.shmSize | quote }}}
- name: mailman
  secret: {secretName: {{ .Values.credentials.mailmanSecret | quote }}, defaultMode: 0440, items: [{key: password, path: password}]}
- name: sas
  secret: {secretName: {{ .Values.credentials.sasSecret | quote }}, defaultMode: 0440, items: [{key: password, path: password}]}
{{- end }}

{{- define "arcray.volumeMounts" -}}
- {name: data, mountPath: {{ .Values.storage.mountPath | quote }}}
- {name: dshm, mountPath: /dev/shm}
- {name: mailman, mountPath: /var/run/secrets/arcray/mailman, readOnly: true}
- {name: sas, mountPath: /var/run/secrets/arcray/sas, readOnly: true}
{{- end }}

{{/* A Ray pod template. dict: root, container, resources, ports (list), gpus (int), gpu (bool) */}}
{{- define "arcray.rayPod" -}}
{{- $v := .root.Values -}}
metadata:
  labels:
    {{- include "arcray.selectorLabels" .root | nindent 4 }}
spec:
  securityContext:
    {{- toYaml $v.podSecurityContext | nindent 4 }}
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- range . }}
    - name: {{ . | quote }}
    {{- end }}
  {{- end }}
  {{- if .gpu }}
  {{- with $v.gpuWorkers.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.gpuWorkers.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- end }}
  containers:
    - name: {{ .container }}
      image: {{ include "arcray.image" .root | quote }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      env:
        {{- include "arcray.credentialEnv" .root | nindent 8 }}
      resources:
        requests:
          {{- toYaml .resources.requests | nindent 10 }}
          {{- if .gpu }}
          nvidia.com/gpu: {{ $v.gpuWorkers.gpus }}
          {{- end }}
        limits:
          {{- toYaml .resources.limits | nindent 10 }}
          {{- if .gpu }}
          nvidia.com/gpu: {{ $v.gpuWorkers.gpus }}
          {{- end }}
      securityContext:
        {{- toYaml $v.containerSecurityContext | nindent 8 }}
      {{- with .ports }}
      ports:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        {{- include "arcray.volumeMounts" .root | nindent 8 }}
  volumes:
    {{- include "arcray.volumes" .root | nindent 4 }}
{{- end }}

{{/* Lifecycle of a finished RayJob (see jobs.cleanup). KubeRay v1.7 refuses deletionRules together
     with shutdownAfterJobFinishes or a global ttlSecondsAfterFinished, so the two modes are
     exclusive; within one condition the rules' TTLs grow (cluster first, then the RayJob).
     dict: root, deleteSelf (bool: a scheduled run may delete itself; Helm-owned RayJobs may not) */}}
{{- define "arcray.rayJobLifecycle" -}}
{{- $j := .root.Values.jobs -}}
{{- if eq $j.cleanup "shutdown" }}
shutdownAfterJobFinishes: true
ttlSecondsAfterFinished: {{ $j.ttlSecondsAfterFinished }}
{{- else }}
{{- if and .deleteSelf (gt (int $j.deleteJobAfterSeconds) 0) (lt (int $j.deleteJobAfterSeconds) (int $j.ttlSecondsAfterFinished)) }}
{{- fail "jobs.deleteJobAfterSeconds must be 0 or at least jobs.ttlSecondsAfterFinished" }}
{{- end }}
deletionStrategy:
  deletionRules:
    {{- range $cond := list (dict "jobStatus" "SUCCEEDED") (dict "jobStatus" "FAILED") (dict "jobDeploymentStatus" "Failed") }}
    - policy: DeleteCluster
      condition:
        {{- toYaml $cond | nindent 8 }}
        ttlSeconds: {{ $j.ttlSecondsAfterFinished }}
    {{- if and $.deleteSelf (gt (int $j.deleteJobAfterSeconds) 0) }}
    - policy: DeleteSelf
      condition:
        {{- toYaml $cond | nindent 8 }}
        ttlSeconds: {{ $j.deleteJobAfterSeconds }}
    {{- end }}
    {{- end }}
{{- end }}
{{- end }}

{{/* A RayJob spec running `entrypoint` on its own cluster.
     dict: root, entrypoint, gpu, deadline, backoff, deleteSelf */}}
{{- define "arcray.rayJobSpec" -}}
{{- $v := .root.Values -}}
entrypoint: {{ .entrypoint | quote }}
submissionMode: K8sJobMode
activeDeadlineSeconds: {{ .deadline }}
backoffLimit: {{ .backoff }}
{{- include "arcray.rayJobLifecycle" (dict "root" .root "deleteSelf" .deleteSelf) }}
submitterConfig:
  backoffLimit: 2
submitterPodTemplate:
  spec:
    restartPolicy: Never
    securityContext:
      {{- toYaml $v.podSecurityContext | nindent 6 }}
    containers:
      - name: ray-job-submitter
        image: {{ include "arcray.image" .root | quote }}
        imagePullPolicy: {{ $v.image.pullPolicy }}
        resources:
          {{- toYaml $v.jobs.submitterResources | nindent 10 }}
        securityContext:
          {{- toYaml $v.containerSecurityContext | nindent 10 }}
rayClusterSpec:
  rayVersion: {{ $v.rayVersion | quote }}
  enableInTreeAutoscaling: true
  {{- if eq $v.rayAuthMode "token" }}
  authOptions:
    mode: token
  {{- end }}
  headGroupSpec:
    rayStartParams:
      dashboard-host: "0.0.0.0"
      num-cpus: "0"
      metrics-export-port: "8080"
    template:
      {{- $ports := list (dict "containerPort" 6379 "name" "gcs-server") (dict "containerPort" 8265 "name" "dashboard") (dict "containerPort" 10001 "name" "client") (dict "containerPort" 8080 "name" "metrics") }}
      {{- include "arcray.rayPod" (dict "root" .root "container" "ray-head" "resources" $v.head.resources "ports" $ports "gpu" false) | nindent 6 }}
  workerGroupSpecs:
    - groupName: cpu
      replicas: {{ $v.cpuWorkers.replicas }}
      minReplicas: {{ $v.cpuWorkers.minReplicas }}
      maxReplicas: {{ $v.cpuWorkers.maxReplicas }}
      rayStartParams:
        metrics-export-port: "8080"
      template:
        {{- include "arcray.rayPod" (dict "root" .root "container" "ray-worker" "resources" $v.cpuWorkers.resources "ports" (list (dict "containerPort" 8080 "name" "metrics")) "gpu" false) | nindent 8 }}
    {{- if .gpu }}
    - groupName: gpu
      replicas: {{ $v.gpuWorkers.replicas }}
      minReplicas: 0
      maxReplicas: {{ $v.gpuWorkers.maxReplicas }}
      rayStartParams:
        metrics-export-port: "8080"
      template:
        {{- include "arcray.rayPod" (dict "root" .root "container" "ray-worker" "resources" $v.gpuWorkers.resources "ports" (list (dict "containerPort" 8080 "name" "metrics")) "gpu" true) | nindent 8 }}
    {{- end }}
{{- end }}

{{/* Entrypoint of a scheduled run. dict: root, window ("nightly" | "backfill"), cfg (its values).
     nightly:  python /app/jobs/night.py --root ROOT --yesterday ARGS
     backfill: python -m arcray.deploy.backfill --root ROOT (--months N | --mjd-min A --mjd-max B) -- ARGS */}}
{{- define "arcray.scheduledEntrypoint" -}}
{{- $root := .root.Values.storage.root | squote }}
{{- if eq .window "nightly" }}
{{- $parts := list "python /app/jobs/night.py --root" $root "--yesterday" }}
{{- with .cfg.args }}{{ $parts = append $parts . }}{{ end }}
{{- join " " $parts }}
{{- else }}
{{- $parts := list "python -m arcray.deploy.backfill --root" $root }}
{{- $lo := int (default 0 .cfg.mjdMin) }}{{ $hi := int (default 0 .cfg.mjdMax) }}
{{- if or $lo $hi }}
{{- if not (and $lo $hi) }}{{ fail "backfill.mjdMin and backfill.mjdMax are set together" }}{{ end }}
{{- if lt $hi $lo }}{{ fail "backfill.mjdMax is before backfill.mjdMin" }}{{ end }}
{{- $parts = append $parts (printf "--mjd-min %d --mjd-max %d" $lo $hi) }}
{{- else }}
{{- $parts = append $parts (printf "--months %d" (int .cfg.months)) }}
{{- end }}
{{- with .cfg.args }}{{ $parts = append $parts (printf "-- %s" .) }}{{ end }}
{{- join " " $parts }}
{{- end }}
{{- end }}
