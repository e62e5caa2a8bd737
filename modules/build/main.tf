# The image tag is a hash of the build context plus the target architecture
# (`<hash>-amd64`), computed here exactly as tools/build.py computes it
# (tests/modules/build checks that the two agree): every file that
# .dockerignore does not exclude (the last matching rule wins, a pattern also covers
# everything below it), plus Dockerfile and .dockerignore, hashed as a sha256sum-style
# manifest. A change to any byte or path replaces terraform_data.image, which runs the
# build and push; an unchanged context plans no change at all.

locals {
  repo_root = abspath("${path.module}/../..")
  context   = abspath(var.source_dir)

  dockerignore_lines = fileexists("${local.context}/.dockerignore") ? split("\n", file("${local.context}/.dockerignore")) : []
  ignore_rules = [
    for line in local.dockerignore_lines : {
      exclude = !startswith(trimspace(line), "!")
      pattern = trim(trimspace(trimprefix(trimspace(line), "!")), "/")
    } if trimspace(line) != "" && !startswith(trimspace(line), "#")
  ]
  ignore_matches = [
    for rule in local.ignore_rules : setunion(fileset(local.context, rule.pattern), fileset(local.context, "${rule.pattern}/**"))
  ]
  kept_files = [
    for file in fileset(local.context, "**") : file
    if !try(reverse([for i, rule in local.ignore_rules : rule.exclude if contains(local.ignore_matches[i], file)])[0], false)
  ]
  always_files  = [for name in ["Dockerfile", ".dockerignore"] : name if fileexists("${local.context}/${name}")]
  context_files = sort(distinct(concat(local.kept_files, local.always_files)))

  content_hash = sha256(join("", [for file in local.context_files : "${filesha256("${local.context}/${file}")}  ${file}\n"]))
  image_tag    = "${substr(local.content_hash, 0, 16)}-${split("/", var.platform)[1]}"

  build_script = "${local.repo_root}/tools/build.py"
  python       = coalesce(var.python, fileexists("${local.repo_root}/.venv/bin/python") ? "${local.repo_root}/.venv/bin/python" : "python3")
  build_command = concat(
    [local.python, local.build_script, "--registry", var.repository_url, "--context", local.context, "--platform", var.platform],
    var.docker_network == null ? [] : ["--network", var.docker_network],
  )
}

resource "terraform_data" "image" {
  triggers_replace = {
    content_hash   = local.content_hash
    platform       = var.platform
    repository_url = var.repository_url
  }
  input = "${var.repository_url}:${local.image_tag}"

  lifecycle {
    precondition {
      condition     = var.python == null || fileexists(coalesce(var.python, "-"))
      error_message = "python is ${coalesce(var.python, "-")}, which does not exist: give the path of a Python that has the docker and boto3 packages, or null for the repository's .venv (else python3)."
    }
    precondition {
      condition     = fileexists(local.build_script)
      error_message = "tools/build.py is not at ${local.build_script}: use this module by a relative source (./modules/build) from its repository, not by an absolute path or a registry address."
    }
  }

  provisioner "local-exec" {
    # An argument list, no shell: local-exec runs `interpreter... command`, so the last
    # argument goes in `command` and the rest in `interpreter`.
    interpreter = slice(local.build_command, 0, length(local.build_command) - 1)
    command     = local.build_command[length(local.build_command) - 1]
    environment = {
      AWS_REGION = var.aws_region
    }
  }
}
