variable "repository_url" {
  description = "Repository the image is pushed to: an ECR repository URL (<account>.dkr.ecr.<region>.amazonaws.com/<name>) or host:port/<name> of any registry."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+$", var.repository_url))
    error_message = "repository_url must look like host[:port]/name, e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/inference-proxy."
  }
}

variable "source_dir" {
  description = "Build context: the directory with the Dockerfile (app/ of this repository). Its content hash is the image tag."
  type        = string

  validation {
    condition     = fileexists("${var.source_dir}/Dockerfile")
    error_message = "source_dir must be a directory containing a Dockerfile."
  }
}

variable "aws_region" {
  description = "AWS region of the ECR registry, used by tools/build.py for the ECR login."
  type        = string
}

variable "platform" {
  description = "Platform of the instance that runs the image: linux/amd64 (x86_64) or linux/arm64 (Graviton). The build targets it whatever machine runs Terraform, and its architecture is part of the tag."
  type        = string
  default     = "linux/amd64"

  validation {
    condition     = contains(["linux/amd64", "linux/arm64"], var.platform)
    error_message = "platform must be one of linux/amd64, linux/arm64."
  }
}

variable "python" {
  description = "Python interpreter that runs tools/build.py (needs the docker and boto3 packages). Null: the repository's .venv when it exists, else python3 on PATH."
  type        = string
  default     = null
}

variable "docker_network" {
  description = "Network for the RUN steps of the build (`--network`), e.g. host where the Docker daemon has no bridge. Null: the daemon's default."
  type        = string
  default     = null
}
