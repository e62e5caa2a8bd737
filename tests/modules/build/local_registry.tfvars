# Any registry by host:port, the daemon without a bridge (RUN steps on the host network),
# an explicit interpreter.
repository_url = "127.0.0.1:5000/proxy"
source_dir     = "../../tests/modules/build/context"
aws_region     = "eu-west-1"
docker_network = "host"
python         = "/usr/bin/python3"
