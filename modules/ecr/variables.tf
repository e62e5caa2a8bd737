variable "name" {
  description = "Repository name (lowercase letters, digits and . _ - /, 2 to 256 characters)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9._/-]{1,255}$", var.name))
    error_message = "name must be 2-256 characters of lowercase letters, digits, '.', '_', '-' or '/', starting with a letter or digit."
  }
}

variable "image_retention_count" {
  description = "How many of the most recent images the lifecycle policy keeps; older ones expire."
  type        = number
  default     = 10

  validation {
    condition     = var.image_retention_count > 0 && floor(var.image_retention_count) == var.image_retention_count
    error_message = "image_retention_count must be a whole number greater than 0."
  }
}

variable "force_delete" {
  description = "Let `terraform destroy` delete the repository even when it still holds images."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags for the repository (merged with the provider's default_tags)."
  type        = map(string)
  default     = {}
  nullable    = false
}
