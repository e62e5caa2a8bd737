output "image_uri" {
  description = "The pushed image, <repository_url>:<content tag>. Known only once the push is done, so what reads it waits for the image."
  value       = terraform_data.image.output
}

output "image_tag" {
  description = "Tag of the image: content hash of source_dir and architecture, e.g. 3f2a9c1d0e5b7a88-amd64 (known at plan time); the same tag tools/build.py computes."
  value       = local.image_tag
}

output "content_hash" {
  description = "Full sha256 content hash of source_dir; its first 16 characters start the tag."
  value       = local.content_hash
}
