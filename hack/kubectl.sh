# Sourced by hack/test.sh. The e2e tests check the node with a stock kubectl,
# an outside client: the machine's /usr/bin/kubectl, or else upstream kubectl
# built from the Kubernetes module kubeseed already uses (no download).
if [ ! -x /usr/bin/kubectl ] && [ ! -x /usr/local/bin/kubectl ]; then
	echo "no /usr/bin/kubectl: building upstream kubectl into /usr/local/bin"
	go build -o /usr/local/bin/kubectl k8s.io/kubernetes/cmd/kubectl
fi
