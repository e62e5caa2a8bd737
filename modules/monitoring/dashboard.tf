# One dashboard for the deployment: traffic, latency, time to first token, tokens per
# second, health, the host (disk, memory, GPUs), the alarms and the latest 5xx answers.

locals {
  console = "https://${var.region}.${lookup({ aws-cn = "console.amazonaws.cn", aws-us-gov = "console.amazonaws-us-gov.com" }, var.partition, "console.aws.amazon.com")}"

  # Each widget: [title, properties]; the grid is three 8x6 widgets a row.
  # The host widgets read the agent's aggregate by instance, or by group (every instance).
  host = flatten([for name, value in local.host_dimension : [name, value]])
  widget_list = [for widget in [
    ["Requests per minute (API routes)", {
      stat = "Sum", metrics = [
        [local.namespace, "Requests"], [local.namespace, "Errors4xx"], [local.namespace, "Errors5xx"],
      ]
    }],
    ["Request duration (s)", {
      metrics = [
        [local.namespace, "RequestDuration", { stat = "p50", label = "p50" }],
        [local.namespace, "RequestDuration", { stat = "p90", label = "p90" }],
      ]
    }],
    ["Time to first token, streams (s)", {
      metrics = [
        [local.namespace, "TimeToFirstToken", { stat = "p50", label = "p50" }],
        [local.namespace, "TimeToFirstToken", { stat = "p90", label = "p90" }],
      ]
    }],
    ["Tokens per second", {
      metrics = [
        [{ expression = "completion / PERIOD(completion)", label = "completion", id = "completion_rate" }],
        [{ expression = "prompt / PERIOD(prompt)", label = "prompt", id = "prompt_rate" }],
        [local.namespace, "CompletionTokens", { stat = "Sum", id = "completion", visible = false }],
        [local.namespace, "PromptTokens", { stat = "Sum", id = "prompt", visible = false }],
      ]
    }],
    ["Requests in flight", {
      stat = "Maximum", metrics = [[local.namespace, "InFlightRequests"]]
    }],
    ["Healthy: /ready through NGINX (1 yes, 0 no)", {
      stat = "Minimum", metrics = [[local.namespace, "Healthy"]], yAxis = { left = { min = 0, max = 1 } }
    }],
    ["Disk used, fullest file system (%)", {
      stat  = "Maximum", metrics = [concat([local.namespace, "disk_used_percent"], local.host)],
      yAxis = { left = { min = 0, max = 100 } }
    }],
    ["Memory used (%)", {
      stat  = "Maximum", metrics = [concat([local.namespace, "mem_used_percent"], local.host)],
      yAxis = { left = { min = 0, max = 100 } }
    }],
    var.use_gpu ? ["GPU utilisation, busiest GPU (%)", {
      stat  = "Maximum", metrics = [concat([local.namespace, "nvidia_smi_utilization_gpu"], local.host)],
      yAxis = { left = { min = 0, max = 100 } }
    }] : null,
    var.use_gpu ? ["GPU memory used, all GPUs (%)", {
      metrics = [
        [{ expression = "100 * used / total", label = "memory used", id = "gpu_memory" }],
        concat([local.namespace, "nvidia_smi_memory_used"], local.host, [{ stat = "Sum", id = "used", visible = false }]),
        concat([local.namespace, "nvidia_smi_memory_total"], local.host, [{ stat = "Sum", id = "total", visible = false }]),
      ]
      yAxis = { left = { min = 0, max = 100 } }
    }] : null,
  ] : widget if widget != null]

  metric_widgets = [for index, widget in local.widget_list : {
    type       = "metric", x = (index % 3) * 8, y = floor(index / 3) * 6, width = 8, height = 6
    properties = merge({ title = widget[0], region = var.region, view = "timeSeries", period = 60 }, widget[1])
  }]
  last_row = ceil(length(local.widget_list) / 3) * 6

  other_widgets = [for widget in [
    {
      type = "alarm", x = 0, y = local.last_row, width = 8, height = 6
      properties = {
        title = "Alarms"
        # The ARNs by name, so that the body is known at plan time.
        alarms = [for alarm in local.alarm_names : "arn:${var.partition}:cloudwatch:${var.region}:${var.account_id}:alarm:${alarm}"]
      }
    },
    local.logs ? {
      type = "log", x = 8, y = local.last_row, width = 16, height = 6
      properties = {
        title  = "Latest 5xx answers of the proxy"
        region = var.region
        view   = "table"
        query  = "SOURCE '${local.log_group_name}' | filter @logStream like /inference-proxy/ and status >= 500 | fields @timestamp, status, route, outcome, key, request_id | sort @timestamp desc | limit 20"
      }
    } : null,
  ] : widget if widget != null]
}

resource "aws_cloudwatch_dashboard" "this" {
  count = local.metrics ? 1 : 0

  dashboard_name = var.name
  dashboard_body = jsonencode({ widgets = concat(local.metric_widgets, local.other_widgets) })
}
