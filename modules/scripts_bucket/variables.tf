variable "bucket_name" {
  description = "Name of the S3 bucket that holds the instance scripts. The root computes it from name, environment, account and region so that the instance's IAM policy can name it before the bucket exists."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be 3-63 characters of lowercase letters, digits and hyphens, starting and ending with a letter or digit."
  }
}

variable "scripts" {
  description = "Objects to upload: key (e.g. \"scripts/main-setup.sh\") => content. Keys must be known at plan time; content may be computed."
  type        = map(string)
  default     = {}
  nullable    = false

  validation {
    condition     = alltrue([for key in keys(var.scripts) : can(regex("^scripts/[A-Za-z0-9_-][A-Za-z0-9._-]*$", key))])
    error_message = "Every key of scripts must look like \"scripts/<file name>\" (letters, digits, dot, underscore, hyphen; not starting with a dot): the instance role may read that prefix only."
  }

  validation {
    condition     = !contains(keys(var.scripts), "scripts/manifest")
    error_message = "scripts/manifest is the bucket's own object (every script with its SHA-256); name the script otherwise."
  }
}

variable "force_destroy" {
  description = "Allow `terraform destroy` to delete the bucket with all object versions in it. The bucket only holds rendered scripts, which Terraform recreates."
  type        = bool
  default     = true
}

variable "noncurrent_version_retention_days" {
  description = "Days a replaced script version is kept (versioning is always on) before it expires."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_retention_days >= 1
    error_message = "noncurrent_version_retention_days must be at least 1."
  }
}

variable "kms_key_arn" {
  description = "KMS key for server-side encryption. Null: SSE-S3 (AES256), which needs no key policy for the instance role."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource of this module (on top of the provider's default_tags)."
  type        = map(string)
  default     = {}
  nullable    = false
}
