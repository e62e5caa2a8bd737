output "repository_url" {
  description = "URL to push and pull images: <registry>/<name>."
  value       = aws_ecr_repository.this.repository_url
}

output "repository_arn" {
  description = "ARN of the repository (for IAM policies)."
  value       = aws_ecr_repository.this.arn
}

output "repository_name" {
  description = "Name of the repository."
  value       = aws_ecr_repository.this.name
}

output "registry_id" {
  description = "Account id of the registry that holds the repository."
  value       = aws_ecr_repository.this.registry_id
}
