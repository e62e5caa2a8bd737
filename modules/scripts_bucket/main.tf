resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_18:Access logging would need a second bucket; this one holds only rendered, non-secret scripts.
  #checkov:skip=CKV_AWS_144:Cross-region replication is not worth it for scripts Terraform can re-render at any time.
  #checkov:skip=CKV2_AWS_62:No consumer listens for object events; the instance fetches the scripts at boot.
  bucket        = var.bucket_name
  force_destroy = var.force_destroy

  tags = merge(var.tags, { Name = var.bucket_name })
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket = aws_s3_bucket.this.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.kms_key_arn == null ? "AES256" : "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = var.kms_key_arn != null
  }
}

resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    id     = "expire-replaced-scripts"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_retention_days
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

data "aws_iam_policy_document" "bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.this.arn,
      "${aws_s3_bucket.this.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id
  policy = data.aws_iam_policy_document.bucket.json

  # A bucket policy put before the public access block could be rejected as public.
  depends_on = [aws_s3_bucket_public_access_block.this]
}

resource "aws_s3_object" "script" {
  for_each = var.scripts

  bucket       = aws_s3_bucket.this.id
  key          = each.key
  content      = each.value
  content_type = endswith(each.key, ".sh") ? "text/x-shellscript" : "text/plain"

  tags = var.tags

  depends_on = [
    aws_s3_bucket_ownership_controls.this,
    aws_s3_bucket_server_side_encryption_configuration.this,
    aws_s3_bucket_versioning.this,
  ]
}

# Every object above with its SHA-256, in sha256sum's format ("<hash>  <file name>"), uploaded
# after them: the instance polls this one object (update.sh), fetches the files whose hash
# differs from its copy, checks each against it, and applies the change in place. So a
# change of the scripts or settings reaches a running instance without touching it.
locals {
  manifest = join("", [
    for key in sort(keys(var.scripts)) : "${sha256(var.scripts[key])}  ${trimprefix(key, "scripts/")}\n"
  ])
}

resource "aws_s3_object" "manifest" {
  bucket       = aws_s3_bucket.this.id
  key          = "scripts/manifest"
  content      = local.manifest
  content_type = "text/plain"

  tags = var.tags

  # Last: when an instance sees this version, every file it names is there (S3 reads are
  # strongly consistent after a write).
  depends_on = [aws_s3_object.script]
}
