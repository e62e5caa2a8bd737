output "image_uri" {
  description = "The pushed image, <repository_url>:<content tag>. Known only once the push is done, so what reads it waits for the image."
  value       = terraform_data.image.output
}

output "image_tag" {
  description = "Content-hash tag of source_dir (known at plan time); the same tag tools/build.py computes."
  value       = local.image_tag
}

output "content_hash" {
  description = "Full sha256 content hash of source_dir whose first 16 characters are the tag."
  value       = local.content_hash
}
