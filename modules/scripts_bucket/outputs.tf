output "bucket_name" {
  description = "Name of the scripts bucket."
  value       = aws_s3_bucket.this.id
}

output "bucket_arn" {
  description = "ARN of the scripts bucket."
  value       = aws_s3_bucket.this.arn
}

output "object_keys" {
  description = "Keys of the uploaded script objects, sorted."
  value       = sort(keys(aws_s3_object.script))
}

output "object_version_ids" {
  description = "Key => S3 version id of every uploaded object (changes whenever a script changes)."
  value       = { for key, object in aws_s3_object.script : key => object.version_id }
}

output "manifest_sha256" {
  description = "SHA-256 of the manifest: changes whenever any uploaded file does (the autoscaling mode rolls its instances on it)."
  value       = sha256(local.manifest)
}

output "manifest_key" {
  description = "Key of the manifest object (every script with its SHA-256), which instances poll to apply a change in place."
  value       = aws_s3_object.manifest.key
}
