resource "aws_ecr_repository" "this" {
  #checkov:skip=CKV_AWS_136:The image holds no secrets (API keys and tokens come from SSM at run time); ECR encrypts it at rest with AES256 either way.
  name = var.name
  # Tags are content hashes (tools/build.py): an immutable tag can never point at other bytes.
  image_tag_mutability = "IMMUTABLE"
  force_delete         = var.force_delete
  tags                 = var.tags

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "AES256"
  }
}

resource "aws_ecr_lifecycle_policy" "this" {
  repository = aws_ecr_repository.this.name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "Keep the last ${var.image_retention_count} images"
      selection = {
        tagStatus   = "any"
        countType   = "imageCountMoreThan"
        countNumber = var.image_retention_count
      }
      action = { type = "expire" }
    }]
  })
}
