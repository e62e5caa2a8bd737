# Inputs of the working-hours schedule. The root module owns the defaults and validations
# of what a user sets (schedule); they arrive here as required, typed inputs.

variable "name" {
  description = "Name prefix of the schedule group, the two schedules and their role."
  type        = string
}

variable "region" {
  description = "AWS region of the instance and the schedules."
  type        = string
}

variable "account_id" {
  description = "AWS account ID (the role trusts EventBridge Scheduler of this account only)."
  type        = string
}

variable "partition" {
  description = "AWS partition of the ARNs (aws, aws-cn, aws-us-gov)."
  type        = string
}

variable "instance_id" {
  description = "ID of the instance the schedules start and stop (null is refused: the autoscaling mode has no single instance)."
  type        = string
}

variable "instance_arn" {
  description = "ARN of that instance: the only resource the schedules' role may start and stop."
  type        = string
}

variable "volume_kms_key_id" {
  description = "ARN of the customer managed KMS key of the instance's volumes. Starting an instance whose volumes use such a key needs kms:CreateGrant on it (granted only for AWS resources). Null: the account's default EBS key (aws/ebs), which needs nothing more."
  type        = string
}

variable "schedule" {
  description = "When to start and stop: EventBridge cron expressions (six fields, optionally inside cron(...)); either may be null. The time zone is an IANA name."
  type = object({
    start    = string
    stop     = string
    timezone = string
  })
  nullable = false
}

variable "tags" {
  description = "Tags added to the schedule group and the role (on top of the provider's default_tags; EventBridge schedules themselves take no tags)."
  type        = map(string)
  default     = {}
  nullable    = false
}
