# Inputs of the monitoring module. The root module owns the default and the validation of
# every value a user sets (docs/DEVELOPMENT.md "One source of truth"); only `tags` is this
# module's own.

variable "name" {
  description = "Name of the deployment (<name>-<environment>): names the log group, the metric namespace, the alarms, the topic and the dashboard."
  type        = string
}

variable "region" {
  description = "AWS region of the deployment (ARNs, the agent's region, console URLs)."
  type        = string
}

variable "account_id" {
  description = "AWS account ID, for the log group ARN the instance policy names."
  type        = string
}

variable "partition" {
  description = "AWS partition of the ARNs (aws, aws-cn, aws-us-gov)."
  type        = string
}

variable "instance_id" {
  description = "deployment_mode \"instance\": ID of the instance the status-check alarms (EC2's recover and reboot actions), the disk alarm and the dashboard's host widgets watch. Null in the autoscaling mode."
  type        = string
}

variable "autoscaling_group_name" {
  description = "deployment_mode \"autoscaling\": name of the Auto Scaling group, known at plan (it decides which alarms exist). The disk alarm and the dashboard read the agent's aggregate over the group's instances, no status-check alarm acts on an instance (the group's ELB health check replaces a broken one), and each ready instance publishes its requests in flight for the scaling policy (output load_metric). Null in the instance mode."
  type        = string
}

variable "instance_type" {
  description = "Instance type: EC2 recovers an instance onto new hardware only when its type has no instance store (g5, g6, p4d do), so the system-status alarm recovers or only notifies."
  type        = string
}

variable "use_gpu" {
  description = "GPU instance: the agent collects the GPUs' utilisation and memory (nvidia_gpu) and the dashboard shows them."
  type        = bool
}

variable "instance_role_name" {
  description = "Name of the instance role; the module attaches the policy for its logs and metrics to it."
  type        = string
}

variable "logs" {
  description = "CloudWatch Logs: enabled (the containers through Docker's awslogs driver, NGINX and the boot logs through the agent; else Docker's local driver with rotation), retention_days, kms_key_arn (null: CloudWatch's own encryption)."
  type = object({
    enabled        = bool
    retention_days = number
    kms_key_arn    = string
  })
}

variable "metrics" {
  description = "Metrics, alarms and dashboard: enabled, alarm_email (null: no SNS topic; the alarms still act), unhealthy_minutes (how long the endpoint may fail /ready before its alarm)."
  type = object({
    enabled           = bool
    alarm_email       = string
    unhealthy_minutes = number
  })
}

variable "tags" {
  description = "Tags added to every resource of this module (on top of the provider's default_tags)."
  type        = map(string)
  default     = {}
  nullable    = false
}
