# The monitoring module's files for the instance, uploaded by the root with the other
# scripts (and listed in the bucket's manifest, so that a change reaches a running instance
# in place). setup-docker.sh installs docker-daemon.json; main-setup.sh runs
# setup-monitoring.sh after NGINX, which installs the agent and the metrics timer.

locals {
  agent = local.logs || local.metrics

  # Docker's default log driver for vLLM's and the proxy's containers. With CloudWatch:
  # awslogs into the deployment's group, one stream per instance and container
  # ({instance_id} is filled in by setup-docker.sh), non-blocking so that a container starts
  # and runs while CloudWatch is unreachable (the stream is created on its first line), and
  # Docker's local cache (dual logging) so that `docker logs` keeps working. Without: the
  # local driver, rotated (5 files of 20 MB per container).
  docker_daemon = local.logs ? jsonencode({
    "log-driver" = "awslogs"
    "log-opts" = {
      "awslogs-region"  = var.region
      "awslogs-group"   = aws_cloudwatch_log_group.this[0].name
      "tag"             = "{instance_id}/{{.Name}}"
      "mode"            = "non-blocking"
      "max-buffer-size" = "4m"
      "cache-max-size"  = "20m"
      "cache-max-file"  = "5"
    }
    }) : jsonencode({
    "log-driver" = "local"
    "log-opts"   = { "max-size" = "20m", "max-file" = "5" }
  })

  # What the agent ships: NGINX's logs and the boot's own (what a first boot did, from the
  # console), one stream each per instance.
  agent_log_files = {
    "/var/log/nginx/access.log"       = "nginx-access"
    "/var/log/nginx/error.log"        = "nginx-error"
    "/var/log/user-data.log"          = "user-data"
    "/var/log/inference-recovery.log" = "recovery"
  }

  # The CloudWatch agent's configuration. Its metrics carry the instance's id (and in the
  # autoscaling mode the group's name), plus an aggregate per instance (and per group)
  # (aggregation_dimensions) over every file system and GPU, which is what the disk alarm
  # and the dashboard read (local.host_dimension): the per-disk series carry the path and
  # file system type, which vary with the AMI.
  agent_config = merge([for section in [
    {
      agent = {
        metrics_collection_interval = 60
        region                      = var.region
        omit_hostname               = true
        # NGINX's logs are root's (adm group); the agent reads them as root.
        run_as_user = "root"
      }
    },
    local.logs ? {
      logs = {
        logs_collected = {
          files = {
            collect_list = [for path, stream in local.agent_log_files : {
              file_path       = path
              log_group_name  = aws_cloudwatch_log_group.this[0].name
              log_stream_name = "{instance_id}/${stream}"
              timezone        = "UTC"
            }]
          }
        }
      }
    } : null,
    local.metrics ? {
      metrics = {
        namespace = local.namespace
        append_dimensions = merge(
          { InstanceId = "$${aws:InstanceId}" },
          local.autoscaling ? { AutoScalingGroupName = "$${aws:AutoScalingGroupName}" } : {},
        )
        aggregation_dimensions = local.autoscaling ? [["AutoScalingGroupName"], ["InstanceId"]] : [["InstanceId"]]
        metrics_collected = merge([for collector in [
          { mem = { measurement = ["mem_used_percent"] } },
          {
            disk = {
              measurement              = ["used_percent"]
              resources                = ["*"]
              drop_device              = true
              ignore_file_system_types = ["tmpfs", "devtmpfs", "overlay", "squashfs", "proc", "sysfs", "nsfs", "cgroup2", "efivarfs", "vfat", "fuse.lxcfs"]
            }
          },
          var.use_gpu ? { nvidia_gpu = { measurement = ["utilization_gpu", "memory_used", "memory_total"] } } : null,
        ] : collector if collector != null]...)
      }
    } : null,
  ] : section if section != null]...)

  template_vars = {
    name      = var.name
    agent     = local.agent
    metrics   = local.metrics
    namespace = local.namespace
    # The scaling policy's metric, for the publisher's environment ("" in the instance mode).
    load_metric_namespace  = try(local.load_metric.namespace, "")
    load_metric_name       = try(local.load_metric.name, "")
    load_metric_dimensions = join(",", [for name, value in try(local.load_metric.dimensions, {}) : "${name}=${value}"])
  }

  instance_files = merge(
    {
      "docker-daemon.json"  = local.docker_daemon
      "setup-monitoring.sh" = templatefile("${path.module}/templates/setup-monitoring.sh.tftpl", local.template_vars)
    },
    local.agent ? {
      "amazon-cloudwatch-agent.json" = jsonencode(local.agent_config)
    } : {},
    local.metrics ? {
      "publish-metrics.py"        = file("${path.module}/files/publish_metrics.py")
      "inference-metrics.service" = templatefile("${path.module}/templates/inference-metrics.service.tftpl", local.template_vars)
      "inference-metrics.timer"   = templatefile("${path.module}/templates/inference-metrics.timer.tftpl", local.template_vars)
    } : {},
  )
}
