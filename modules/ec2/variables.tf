# --- identity and placement -------------------------------------------------------------

variable "name" {
  description = "Name prefix of every resource of the instance (role, security group, volume, instance)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,38}$", var.name))
    error_message = "name must start with a lowercase letter and contain only lowercase letters, digits and hyphens (at most 39 characters)."
  }
}

variable "region" {
  description = "AWS region the instance runs in (the scripts call S3, SSM and ECR there)."
  type        = string
}

variable "account_id" {
  description = "AWS account ID, used to build the SSM parameter ARNs of the instance policy."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.account_id))
    error_message = "account_id must be the 12-digit AWS account ID."
  }
}

variable "partition" {
  description = "AWS partition of the ARNs (aws, aws-cn, aws-us-gov)."
  type        = string
  default     = "aws"
}

variable "vpc_id" {
  description = "ID of the VPC that holds the security group."
  type        = string
}

variable "subnet_id" {
  description = "ID of the public subnet the instance runs in."
  type        = string
}

variable "availability_zone" {
  description = "Availability zone of subnet_id; the data volume must live in the same zone."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource of this module (on top of the provider's default_tags)."
  type        = map(string)
  default     = {}
  nullable    = false
}

# --- instance -----------------------------------------------------------------------------

variable "instance_type" {
  description = "EC2 instance type, e.g. g5.xlarge (GPU) or c7i.2xlarge (CPU)."
  type        = string
}

variable "architecture" {
  description = "CPU architecture of instance_type as EC2 names it: x86_64, or arm64 for Graviton types. Picks the Ubuntu AMI (CPU) and the default vLLM CPU image."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be one of x86_64, arm64."
  }
}

variable "use_gpu" {
  description = "Run vLLM on the instance's NVIDIA GPUs (--gpus all, DLAMI by default). False: the CPU build of vLLM."
  type        = bool
  default     = true
}

variable "ami_id" {
  description = "Explicit AMI ID. Null: looked up from ami_ssm_parameter (Deep Learning Base OSS NVIDIA AMI for GPU, Ubuntu 22.04 for CPU). Setting it keeps the plan free of lookups."
  type        = string
  default     = null

  validation {
    condition     = var.ami_id == null || can(regex("^ami-[0-9a-f]{8,17}$", var.ami_id))
    error_message = "ami_id must look like ami-0123456789abcdef0 or be null."
  }
}

variable "ami_ssm_parameter" {
  description = "SSM public parameter that names the AMI when ami_id is null. Null: the DLAMI (GPU) or Canonical Ubuntu 22.04 (CPU) parameter."
  type        = string
  default     = null
}

variable "root_volume_size" {
  description = "Root volume size in GiB (OS, Docker images: the vLLM image alone is ~10 GiB)."
  type        = number
  default     = 100

  validation {
    condition     = var.root_volume_size >= 30
    error_message = "root_volume_size must be at least 30 GiB."
  }
}

variable "data_volume_size" {
  description = "Size in GiB of the model cache volume mounted at /opt/models. It is a separate encrypted EBS volume that survives instance replacement."
  type        = number
  default     = 200

  validation {
    condition     = var.data_volume_size >= 10
    error_message = "data_volume_size must be at least 10 GiB."
  }
}

variable "volume_kms_key_id" {
  description = "ARN of a KMS key for the root and data volumes. Null: the account's default EBS key (volumes are encrypted either way)."
  type        = string
  default     = null
}

variable "key_name" {
  description = "EC2 key pair for SSH. Null (default): no key; use Session Manager."
  type        = string
  default     = null
}

variable "allow_plaintext_http" {
  description = "Serve the API over plain HTTP although allowed_cidr_blocks is wide open (a block shorter than /16, e.g. 0.0.0.0/0) and HTTPS is off. False (default): that combination is refused at plan time."
  type        = bool
  default     = false
}

variable "allowed_cidr_blocks" {
  description = "IPv4 CIDR blocks allowed to reach ports 80 and 443. Let's Encrypt's HTTP-01 challenge needs port 80 from the internet when HTTPS is on."
  type        = list(string)
  nullable    = false

  validation {
    condition     = alltrue([for cidr in var.allowed_cidr_blocks : can(cidrhost(cidr, 0))])
    error_message = "allowed_cidr_blocks must contain valid IPv4 CIDR blocks such as 203.0.113.0/24."
  }
}

variable "ssh_cidr_blocks" {
  description = "IPv4 CIDR blocks allowed to reach port 22. Empty (default): port 22 stays closed."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for cidr in var.ssh_cidr_blocks : can(cidrhost(cidr, 0))])
    error_message = "ssh_cidr_blocks must contain valid IPv4 CIDR blocks such as 203.0.113.7/32."
  }
}

variable "instance_version" {
  description = "Bump to replace the instance: the volume attachment and Elastic IP association are replaced delete-first (the old instance is stopped and detached), the new instance is launched and gets both, the old one is terminated. Script changes alone never replace it."
  type        = number
  default     = 1

  validation {
    condition     = var.instance_version >= 1 && floor(var.instance_version) == var.instance_version
    error_message = "instance_version must be a whole number >= 1."
  }
}

# --- what runs on it ----------------------------------------------------------------------

variable "scripts_bucket_name" {
  description = "Name of the bucket the scripts are uploaded to (the bootstrap fetches scripts/* from it)."
  type        = string
}

variable "ecr_repository_arn" {
  description = "ARN of the ECR repository the instance may pull the proxy image from."
  type        = string
}

variable "proxy_image_uri" {
  description = "Full URI of the proxy image, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/llm:3f2a... May be unknown at plan time (built during apply)."
  type        = string
}

variable "vllm" {
  description = "vLLM server: image (pinned tag or digest; null: the release in vllm.version, GPU or CPU build for the architecture), model, context length, GPU memory share, tensor parallel size (GPUs per model), extra arguments, and how long the first start may take (download + load)."
  type = object({
    image                  = optional(string)
    model_id               = string
    max_model_len          = optional(number, 8192)
    gpu_memory_utilization = optional(number, 0.9)
    tensor_parallel_size   = optional(number, 1)
    extra_args             = optional(list(string), [])
    startup_timeout        = optional(number, 3600)
  })
  nullable = false

  # Docker's reference grammar (distribution/reference): [host[:port]/]path[:tag][@digest],
  # where a host has a dot or a port or is localhost; here a tag or a digest is required.
  validation {
    condition     = var.vllm.image == null || (can(regex("^(?:(?:localhost(?::[0-9]+)?|(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])(?:\\.(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]))+(?::[0-9]+)?|(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]):[0-9]+|\\[[0-9A-Fa-f:]+\\](?::[0-9]+)?)/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,})?|@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,})$", coalesce(var.vllm.image, "-"))) && !endswith(coalesce(var.vllm.image, "-"), ":latest"))
    error_message = "vllm.image must be an image reference pinned to a tag other than latest or to a digest, [registry[:port]/]path:tag or ...@sha256:<hex>, e.g. vllm/vllm-openai:v<release>, or null for the release in vllm.version."
  }
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._/-]*$", var.vllm.model_id))
    error_message = "vllm.model_id must be a Hugging Face model id such as Qwen/Qwen2.5-7B-Instruct."
  }
  validation {
    condition     = var.vllm.gpu_memory_utilization > 0 && var.vllm.gpu_memory_utilization <= 1
    error_message = "vllm.gpu_memory_utilization must be in (0, 1]."
  }
  validation {
    condition     = contains([1, 2, 4, 8], var.vllm.tensor_parallel_size)
    error_message = "vllm.tensor_parallel_size must be one of 1, 2, 4, 8."
  }
  validation {
    condition     = var.vllm.max_model_len >= 256 && floor(var.vllm.max_model_len) == var.vllm.max_model_len
    error_message = "vllm.max_model_len must be a whole number >= 256."
  }
  validation {
    condition     = alltrue([for arg in var.vllm.extra_args : can(regex("^[A-Za-z0-9_./:=,@+-]+$", arg))])
    error_message = "vllm.extra_args entries may contain only letters, digits and _./:=,@+- (one argument per entry, no spaces or quotes), e.g. [\"--enable-prefix-caching\", \"--max-num-seqs=64\"]."
  }
  validation {
    condition     = var.vllm.startup_timeout >= 60
    error_message = "vllm.startup_timeout must be at least 60 seconds."
  }
}

variable "proxy" {
  description = "Inference proxy: listen port (loopback, behind NGINX), timeouts in seconds (default for ordinary requests, max for long generations), in-flight limit and body size limit."
  type = object({
    port            = optional(number, 8080)
    default_timeout = optional(number, 90)
    max_timeout     = optional(number, 600)
    max_concurrency = optional(number, 256)
    max_body_bytes  = optional(number, 10485760)
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.proxy.port >= 1024 && var.proxy.port <= 65535 && var.proxy.port != 8000
    error_message = "proxy.port must be between 1024 and 65535 and not 8000 (vLLM's port)."
  }
  validation {
    condition     = var.proxy.default_timeout > 0 && var.proxy.max_timeout > 0
    error_message = "proxy.default_timeout and proxy.max_timeout must be greater than 0."
  }
  validation {
    condition     = var.proxy.max_concurrency >= 1 && var.proxy.max_body_bytes >= 1024
    error_message = "proxy.max_concurrency must be >= 1 and proxy.max_body_bytes >= 1024."
  }
}

variable "https" {
  description = "TLS with a Let's Encrypt certificate for domain_name (the record must point at the Elastic IP; the boot waits for it). acme_server defaults to Let's Encrypt production."
  type = object({
    enabled     = optional(bool, false)
    domain_name = optional(string)
    acme_email  = optional(string)
    acme_server = optional(string, "https://acme-v02.api.letsencrypt.org/directory")
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.https.acme_email == null || can(regex("^[^@\\s']+@[^@\\s']+\\.[^@\\s']+$", var.https.acme_email))
    error_message = "https.acme_email must be an email address such as ops@example.com."
  }
  validation {
    condition     = startswith(var.https.acme_server, "https://")
    error_message = "https.acme_server must be an https:// ACME directory URL."
  }
}

variable "hf_token_parameter_name" {
  description = "Name of the SSM SecureString parameter holding the Hugging Face token (read at boot; may be absent for public models). Null: /<name>/hf_token, one per deployment."
  type        = string
  default     = null

  validation {
    condition     = var.hf_token_parameter_name == null || can(regex("^/[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", var.hf_token_parameter_name))
    error_message = "hf_token_parameter_name must be an SSM parameter path such as /llm-dev/hf_token, or null."
  }
}

variable "api_keys_parameter_name" {
  description = "Name of the SSM SecureString parameter holding the proxy's API keys (comma-separated). Created with a random key at first boot when missing. Null: /<name>/api_keys, one per deployment."
  type        = string
  default     = null

  validation {
    condition     = var.api_keys_parameter_name == null || can(regex("^/[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", var.api_keys_parameter_name))
    error_message = "api_keys_parameter_name must be an SSM parameter path such as /llm-dev/api_keys, or null."
  }
}

variable "watchdog_interval" {
  description = "How often the health watchdog checks vLLM, the proxy and NGINX (systemd time span, e.g. 2min)."
  type        = string
  default     = "2min"

  validation {
    condition     = can(regex("^[0-9]+(s|min|h)$", var.watchdog_interval))
    error_message = "watchdog_interval must be a systemd time span such as 30s, 2min or 1h."
  }
}
