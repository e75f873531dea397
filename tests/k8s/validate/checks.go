package main

// Semantic checks over a decoded set of objects. Strict decoding already
// proved every field exists and has the right type; these catch what the
// types cannot: names the API server would refuse, references between objects
// that point nowhere (a Service port naming no container port, a PDB selecting
// no pod, "$(VAR)" naming no earlier variable, which Kubernetes leaves
// unexpanded without a word), and the rules this project's pods must follow
// (named ports, probes, resources, a locked-down securityContext, a grace
// period that covers preStop plus the drain timeout).

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// requiredLabels must be on every object (Kubernetes' recommended labels).
var requiredLabels = []string{"app.kubernetes.io/name", "app.kubernetes.io/instance"}

// workload is a Deployment or StatefulSet, seen through what the checks need.
type workload struct {
	o        *object
	replicas *int32
	selector *metav1.LabelSelector
	tpl      *corev1.PodTemplateSpec
	hpa      bool // targeted by a HorizontalPodAutoscaler
}

type checker struct {
	objs      []*object
	probs     *problems
	workloads []*workload
	services  map[string]*corev1.Service
	configMap map[string]map[string]bool // name -> keys
	secret    map[string]map[string]bool
	hpaTarget map[string]bool // "Kind/name"
}

func check(objs []*object, namespace string, probs *problems) {
	c := &checker{objs: objs, probs: probs, services: map[string]*corev1.Service{},
		configMap: map[string]map[string]bool{}, secret: map[string]map[string]bool{},
		hpaTarget: map[string]bool{}}
	c.index()
	c.metadata(namespace)
	for _, o := range objs {
		switch v := o.obj.(type) {
		case *corev1.Service:
			c.service(o, v)
		case *corev1.ConfigMap:
			c.configMapKeys(o, keysOf(v.Data, v.BinaryData))
		case *corev1.Secret:
			c.configMapKeys(o, keysOf(v.StringData, v.Data))
		case *policyv1.PodDisruptionBudget:
			c.pdb(o, v)
		case *autoscalingv2.HorizontalPodAutoscaler:
			c.hpa(o, v)
		case *networkingv1.NetworkPolicy:
			c.networkPolicy(o, v)
		}
	}
	for _, w := range c.workloads {
		c.podTemplate(w)
		if s, ok := w.o.obj.(*appsv1.StatefulSet); ok {
			c.statefulSet(w, s)
		}
		if w.hpa && w.replicas != nil {
			c.probs.add(w.o.where, "%s: targeted by a HorizontalPodAutoscaler but sets spec.replicas "+
				"(every upgrade would reset the autoscaled count)", w.o.id())
		}
	}
}

func keysOf[A, B any](a map[string]A, b map[string]B) map[string]bool {
	k := map[string]bool{}
	for n := range a {
		k[n] = true
	}
	for n := range b {
		k[n] = true
	}
	return k
}

// index builds the lookup tables the cross-reference checks use.
func (c *checker) index() {
	for _, o := range c.objs {
		switch v := o.obj.(type) {
		case *appsv1.Deployment:
			c.workloads = append(c.workloads, &workload{o: o, replicas: v.Spec.Replicas,
				selector: v.Spec.Selector, tpl: &v.Spec.Template})
		case *appsv1.StatefulSet:
			c.workloads = append(c.workloads, &workload{o: o, replicas: v.Spec.Replicas,
				selector: v.Spec.Selector, tpl: &v.Spec.Template})
		case *corev1.Service:
			c.services[v.Name] = v
		case *corev1.ConfigMap:
			c.configMap[v.Name] = keysOf(v.Data, v.BinaryData)
		case *corev1.Secret:
			c.secret[v.Name] = keysOf(v.StringData, v.Data)
		case *autoscalingv2.HorizontalPodAutoscaler:
			c.hpaTarget[v.Spec.ScaleTargetRef.Kind+"/"+v.Spec.ScaleTargetRef.Name] = true
		}
	}
	for _, w := range c.workloads {
		w.hpa = c.hpaTarget[w.o.gvk.Kind+"/"+w.o.meta.GetName()]
	}
}

func (c *checker) fieldErrs(o *object, errs field.ErrorList) {
	for _, e := range errs {
		c.probs.add(o.where, "%s: %v", o.id(), e)
	}
}

// metadata: names, namespace, labels and annotations as the API server
// validates them; the recommended labels; no two objects with one identity.
func (c *checker) metadata(namespace string) {
	seen := map[string]string{}
	for _, o := range c.objs {
		nameFn := apivalidation.NameIsDNSSubdomain
		if o.gvk.Kind == "Service" {
			nameFn = apivalidation.NameIsDNS1035Label
		}
		c.fieldErrs(o, apivalidation.ValidateObjectMetaAccessor(o.meta, true, nameFn, field.NewPath("metadata")))
		if namespace != "" && o.meta.GetNamespace() != namespace {
			c.probs.add(o.where, "%s: metadata.namespace is %q, want %q", o.id(), o.meta.GetNamespace(), namespace)
		}
		for _, l := range requiredLabels {
			if o.meta.GetLabels()[l] == "" {
				c.probs.add(o.where, "%s: missing label %s", o.id(), l)
			}
		}
		key := o.gvk.String() + "/" + o.meta.GetNamespace() + "/" + o.meta.GetName()
		if prev, dup := seen[key]; dup {
			c.probs.add(o.where, "%s: defined twice (first at %s)", o.id(), prev)
		}
		seen[key] = o.where
	}
}

func (c *checker) configMapKeys(o *object, keys map[string]bool) {
	for k := range keys {
		for _, msg := range validation.IsConfigMapKey(k) {
			c.probs.add(o.where, "%s: key %q: %s", o.id(), k, msg)
		}
	}
}

// selectorOf validates a label selector and returns it, or nil after
// reporting why it is unusable.
func (c *checker) selectorOf(o *object, sel *metav1.LabelSelector, path string, allowEmpty bool) labels.Selector {
	if sel == nil {
		if allowEmpty {
			return labels.Everything()
		}
		c.probs.add(o.where, "%s: %s is required", o.id(), path)
		return nil
	}
	c.fieldErrs(o, metav1validation.ValidateLabelSelector(sel, metav1validation.LabelSelectorValidationOptions{}, field.NewPath(path)))
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		c.probs.add(o.where, "%s: %s: %v", o.id(), path, err)
		return nil
	}
	if s.Empty() && !allowEmpty {
		c.probs.add(o.where, "%s: %s is empty: it selects every pod of the namespace", o.id(), path)
		return nil
	}
	return s
}

// selected returns the workloads whose pod template the selector matches.
func (c *checker) selected(s labels.Selector) []*workload {
	var out []*workload
	for _, w := range c.workloads {
		if s.Matches(labels.Set(w.tpl.Labels)) {
			out = append(out, w)
		}
	}
	return out
}

// hasPort reports whether a workload's containers expose the port: by name
// when p is a string, by number otherwise.
func hasPort(w *workload, p intstr.IntOrString) bool {
	for _, ct := range w.tpl.Spec.Containers {
		for _, cp := range ct.Ports {
			if (p.Type == intstr.String && cp.Name == p.StrVal) ||
				(p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
				return true
			}
		}
	}
	return false
}

func validProtocol(p corev1.Protocol) bool {
	return p == "" || p == corev1.ProtocolTCP || p == corev1.ProtocolUDP || p == corev1.ProtocolSCTP
}

// ---- Pods ----

func (c *checker) podTemplate(w *workload) {
	o := w.o
	spec := &w.tpl.Spec
	if s := c.selectorOf(o, w.selector, "spec.selector", false); s != nil &&
		!s.Matches(labels.Set(w.tpl.Labels)) {
		c.probs.add(o.where, "%s: spec.selector does not match the pod template's labels", o.id())
	}
	c.fieldErrs(o, metav1validation.ValidateLabels(w.tpl.Labels, field.NewPath("spec.template.metadata.labels")))
	c.fieldErrs(o, apivalidation.ValidateAnnotations(w.tpl.Annotations, field.NewPath("spec.template.metadata.annotations")))
	if len(spec.Containers) == 0 {
		c.probs.add(o.where, "%s: no containers", o.id())
	}
	volumes := map[string]bool{}
	for i, v := range spec.Volumes {
		for _, msg := range validation.IsDNS1123Label(v.Name) {
			c.probs.add(o.where, "%s: spec.template.spec.volumes[%d].name %q: %s", o.id(), i, v.Name, msg)
		}
		if volumes[v.Name] {
			c.probs.add(o.where, "%s: volume %q defined twice", o.id(), v.Name)
		}
		volumes[v.Name] = true
		if v.ConfigMap != nil && c.configMap[v.ConfigMap.Name] == nil && !isTrue(v.ConfigMap.Optional) &&
			c.ownedName(v.ConfigMap.Name) {
			c.probs.add(o.where, "%s: volume %q mounts ConfigMap %q, which is not rendered", o.id(), v.Name, v.ConfigMap.Name)
		}
	}
	if spec.ServiceAccountName != "" && !c.has("ServiceAccount", spec.ServiceAccountName) && c.ownedName(spec.ServiceAccountName) {
		c.probs.add(o.where, "%s: serviceAccountName %q is not rendered", o.id(), spec.ServiceAccountName)
	}
	names := map[string]bool{}
	all := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
	for i := range all {
		ct := &all[i]
		init := i < len(spec.InitContainers)
		for _, msg := range validation.IsDNS1123Label(ct.Name) {
			c.probs.add(o.where, "%s: container name %q: %s", o.id(), ct.Name, msg)
		}
		if names[ct.Name] {
			c.probs.add(o.where, "%s: container %q defined twice", o.id(), ct.Name)
		}
		names[ct.Name] = true
		c.container(w, ct, init, volumes)
	}
}

// ownedName reports whether a referenced name looks like one of this
// render's own: it starts with the name prefix all rendered objects share
// (the chart's full name), so a missing object is the chart's bug rather than
// a user's existing object.
func (c *checker) ownedName(name string) bool {
	if len(c.objs) == 0 {
		return false
	}
	lcp := c.objs[0].meta.GetName()
	exact := false
	for _, o := range c.objs[1:] {
		n := o.meta.GetName()
		for !strings.HasPrefix(n, lcp) {
			lcp = lcp[:len(lcp)-1]
		}
	}
	for _, o := range c.objs {
		exact = exact || o.meta.GetName() == lcp
	}
	prefix := lcp + "-"
	if !exact {
		prefix = lcp[:strings.LastIndex(lcp, "-")+1]
	}
	if len(prefix) < 3 {
		return false
	}
	return name == lcp || strings.HasPrefix(name, prefix)
}

func (c *checker) has(kind, name string) bool {
	for _, o := range c.objs {
		if o.gvk.Kind == kind && o.meta.GetName() == name {
			return true
		}
	}
	return false
}

func isTrue(b *bool) bool  { return b != nil && *b }
func isFalse(b *bool) bool { return b != nil && !*b }

func (c *checker) container(w *workload, ct *corev1.Container, init bool, volumes map[string]bool) {
	o := w.o
	pod := &w.tpl.Spec
	at := func(format string, args ...any) {
		c.probs.add(o.where, "%s: container %q: %s", o.id(), ct.Name, fmt.Sprintf(format, args...))
	}

	// Image: pinned by tag or digest, never implicitly "latest".
	img := ct.Image
	last := img[strings.LastIndex(img, "/")+1:]
	switch {
	case img == "" || strings.ContainsAny(img, " \t\n"):
		at("image %q is empty or has blanks", img)
	case !strings.Contains(last, ":") && !strings.Contains(last, "@"):
		at("image %q has no tag or digest", img)
	case strings.HasSuffix(img, ":latest"):
		at("image %q uses the tag latest", img)
	}

	// Ports: every one named (Services, probes and NetworkPolicies refer to names).
	portNames := map[string]bool{}
	for _, p := range ct.Ports {
		if p.Name == "" {
			at("port %d has no name", p.ContainerPort)
		} else {
			for _, msg := range validation.IsValidPortName(p.Name) {
				at("port name %q: %s", p.Name, msg)
			}
		}
		if portNames[p.Name] && p.Name != "" {
			at("port name %q used twice", p.Name)
		}
		portNames[p.Name] = true
		for _, msg := range validation.IsValidPortNum(int(p.ContainerPort)) {
			at("port %q: containerPort %d: %s", p.Name, p.ContainerPort, msg)
		}
		if !validProtocol(p.Protocol) {
			at("port %q: protocol %q", p.Name, p.Protocol)
		}
	}

	// Probes (not for init containers, where the API forbids them).
	if !init {
		if ct.LivenessProbe == nil {
			at("no livenessProbe")
		}
		if ct.ReadinessProbe == nil {
			at("no readinessProbe")
		}
		for name, p := range map[string]*corev1.Probe{"livenessProbe": ct.LivenessProbe,
			"readinessProbe": ct.ReadinessProbe, "startupProbe": ct.StartupProbe} {
			if p != nil {
				c.probe(ct, name, p, at)
			}
		}
		if ct.LivenessProbe != nil && ct.LivenessProbe.SuccessThreshold > 1 {
			at("livenessProbe.successThreshold must be 1")
		}
	}

	// Resources: requests for cpu and memory, a memory limit, request <= limit.
	req, lim := ct.Resources.Requests, ct.Resources.Limits
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := req[r]; !ok {
			at("resources.requests.%s is not set", r)
		}
	}
	if _, ok := lim[corev1.ResourceMemory]; !ok {
		at("resources.limits.memory is not set")
	}
	for r, l := range lim {
		if q, ok := req[r]; ok && q.Cmp(l) > 0 {
			at("resources.requests.%s (%s) is above its limit (%s)", r, q.String(), l.String())
		}
	}

	// Security: non-root, read-only root, no privilege, no capability, seccomp.
	psc := pod.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	sc := ct.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
		at("no securityContext")
	}
	nonRoot := psc.RunAsNonRoot
	if sc.RunAsNonRoot != nil {
		nonRoot = sc.RunAsNonRoot
	}
	if !isTrue(nonRoot) {
		at("runAsNonRoot is not true (pod or container securityContext)")
	}
	uid := psc.RunAsUser
	if sc.RunAsUser != nil {
		uid = sc.RunAsUser
	}
	if uid != nil && *uid == 0 {
		at("runAsUser is 0 (root)")
	}
	if !isTrue(sc.ReadOnlyRootFilesystem) {
		at("securityContext.readOnlyRootFilesystem is not true")
	}
	if !isFalse(sc.AllowPrivilegeEscalation) {
		at("securityContext.allowPrivilegeEscalation is not false")
	}
	if isTrue(sc.Privileged) {
		at("securityContext.privileged is true")
	}
	dropAll := false
	if sc.Capabilities != nil {
		for _, d := range sc.Capabilities.Drop {
			dropAll = dropAll || d == "ALL"
		}
		if len(sc.Capabilities.Add) > 0 {
			at("securityContext.capabilities.add is %v", sc.Capabilities.Add)
		}
	}
	if !dropAll {
		at("securityContext.capabilities.drop does not contain ALL")
	}
	seccomp := psc.SeccompProfile
	if sc.SeccompProfile != nil {
		seccomp = sc.SeccompProfile
	}
	if seccomp == nil || (seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault && seccomp.Type != corev1.SeccompProfileTypeLocalhost) {
		at("seccompProfile is not RuntimeDefault or Localhost")
	}

	// Volume mounts name declared volumes.
	mounts := map[string]bool{}
	for _, m := range ct.VolumeMounts {
		if !volumes[m.Name] {
			at("volumeMount %q names no volume", m.Name)
		}
		if !strings.HasPrefix(m.MountPath, "/") {
			at("volumeMount %q: mountPath %q is not absolute", m.Name, m.MountPath)
		}
		if mounts[m.MountPath] {
			at("mountPath %q used twice", m.MountPath)
		}
		mounts[m.MountPath] = true
	}

	env := c.env(ct, volumes, at)

	// Graceful shutdown: the grace period must cover preStop plus the drain.
	if !init {
		if ct.Lifecycle == nil || ct.Lifecycle.PreStop == nil {
			at("no lifecycle.preStop (endpoints need a moment to drop the pod before SIGTERM)")
		}
		sleep := preStopSeconds(ct)
		grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
		if pod.TerminationGracePeriodSeconds != nil {
			grace = *pod.TerminationGracePeriodSeconds
		}
		for name, val := range env {
			if !strings.HasSuffix(name, "_DRAIN_TIMEOUT_MS") {
				continue
			}
			ms, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				at("%s=%q is not a number of milliseconds", name, val)
				continue
			}
			if need := sleep + (ms+999)/1000; grace <= need {
				at("terminationGracePeriodSeconds %d does not exceed preStop %ds + %s %dms: "+
					"the kubelet would kill the drain", grace, sleep, name, ms)
			}
		}
	}
}

// preStopSeconds returns how long the preStop hook sleeps: the native sleep
// action, or an exec of sleep N.
func preStopSeconds(ct *corev1.Container) int64 {
	if ct.Lifecycle == nil || ct.Lifecycle.PreStop == nil {
		return 0
	}
	h := ct.Lifecycle.PreStop
	if h.Sleep != nil {
		return h.Sleep.Seconds
	}
	if h.Exec != nil && len(h.Exec.Command) == 2 && strings.HasSuffix(h.Exec.Command[0], "sleep") {
		n, _ := strconv.ParseInt(h.Exec.Command[1], 10, 64)
		return n
	}
	return 0
}

func (c *checker) probe(ct *corev1.Container, name string, p *corev1.Probe, at func(string, ...any)) {
	n := 0
	if p.HTTPGet != nil {
		n++
		if !strings.HasPrefix(p.HTTPGet.Path, "/") {
			at("%s.httpGet.path %q does not start with /", name, p.HTTPGet.Path)
		}
	}
	if p.TCPSocket != nil {
		n++
	}
	if p.Exec != nil {
		n++
	}
	if p.GRPC != nil {
		n++
	}
	if n != 1 {
		at("%s has %d handlers, want exactly one", name, n)
	}
	var port *intstr.IntOrString
	if p.HTTPGet != nil {
		port = &p.HTTPGet.Port
	} else if p.TCPSocket != nil {
		port = &p.TCPSocket.Port
	}
	if port != nil {
		found := false
		for _, cp := range ct.Ports {
			found = found || (port.Type == intstr.String && cp.Name == port.StrVal) ||
				(port.Type == intstr.Int && cp.ContainerPort == port.IntVal)
		}
		if !found {
			at("%s port %s is not a port of the container", name, port.String())
		}
	}
	if p.PeriodSeconds < 0 || p.TimeoutSeconds < 0 || p.FailureThreshold < 0 || p.InitialDelaySeconds < 0 {
		at("%s has a negative setting", name)
	}
}

var fieldPaths = map[string]bool{"metadata.name": true, "metadata.namespace": true, "metadata.uid": true,
	"spec.nodeName": true, "spec.serviceAccountName": true, "status.hostIP": true, "status.hostIPs": true,
	"status.podIP": true, "status.podIPs": true}

// env checks env and envFrom and returns the variables whose value is known
// (literal values, and keys of rendered ConfigMaps taken with envFrom).
func (c *checker) env(ct *corev1.Container, volumes map[string]bool, at func(string, ...any)) map[string]string {
	known := map[string]string{} // name -> literal value
	defined := map[string]bool{} // defined so far, for $(VAR)
	opaque := false              // an envFrom whose keys are unknown (external object)
	for _, ef := range ct.EnvFrom {
		var keys map[string]bool
		values := map[string]string{}
		switch {
		case ef.ConfigMapRef != nil && ef.SecretRef == nil:
			keys = c.configMap[ef.ConfigMapRef.Name]
			if keys == nil && !isTrue(ef.ConfigMapRef.Optional) && c.ownedName(ef.ConfigMapRef.Name) {
				at("envFrom ConfigMap %q is not rendered", ef.ConfigMapRef.Name)
			}
			if keys != nil {
				values = c.configMapData(ef.ConfigMapRef.Name)
			}
		case ef.SecretRef != nil && ef.ConfigMapRef == nil:
			keys = c.secret[ef.SecretRef.Name]
		default:
			at("envFrom entry needs exactly one of configMapRef and secretRef")
			continue
		}
		if keys == nil {
			opaque = true
			continue
		}
		for k := range keys {
			name := ef.Prefix + k
			for _, msg := range validation.IsEnvVarName(name) {
				at("envFrom variable %q: %s", name, msg)
			}
			defined[name] = true
			if v, ok := values[k]; ok {
				known[name] = v
			}
		}
	}
	seen := map[string]bool{}
	for _, e := range ct.Env {
		for _, msg := range validation.IsEnvVarName(e.Name) {
			at("env %q: %s", e.Name, msg)
		}
		if seen[e.Name] {
			at("env %q set twice", e.Name)
		}
		seen[e.Name] = true
		if e.ValueFrom != nil {
			s := e.ValueFrom
			n := 0
			for _, set := range []bool{s.FieldRef != nil, s.ResourceFieldRef != nil, s.ConfigMapKeyRef != nil,
				s.SecretKeyRef != nil, s.FileKeyRef != nil} {
				if set {
					n++
				}
			}
			if n != 1 {
				at("env %q: valueFrom needs exactly one source, has %d", e.Name, n)
			}
			if e.Value != "" {
				at("env %q has both value and valueFrom", e.Name)
			}
			if f := s.FieldRef; f != nil && !fieldPaths[f.FieldPath] &&
				!strings.HasPrefix(f.FieldPath, "metadata.labels['") && !strings.HasPrefix(f.FieldPath, "metadata.annotations['") {
				at("env %q: fieldRef.fieldPath %q is not one the downward API offers", e.Name, f.FieldPath)
			}
			if r := s.SecretKeyRef; r != nil {
				if keys := c.secret[r.Name]; keys != nil && !keys[r.Key] && !isTrue(r.Optional) {
					at("env %q: Secret %q has no key %q", e.Name, r.Name, r.Key)
				}
				if r.Name == "" || r.Key == "" {
					at("env %q: secretKeyRef needs name and key", e.Name)
				}
			}
			if r := s.ConfigMapKeyRef; r != nil {
				if keys := c.configMap[r.Name]; keys != nil && !keys[r.Key] && !isTrue(r.Optional) {
					at("env %q: ConfigMap %q has no key %q", e.Name, r.Name, r.Key)
				}
			}
			if r := s.FileKeyRef; r != nil && !volumes[r.VolumeName] {
				at("env %q: fileKeyRef names no volume %q", e.Name, r.VolumeName)
			}
			delete(known, e.Name)
		} else {
			for _, ref := range varRefs(e.Value) {
				if !defined[ref] && !opaque {
					at("env %q refers to $(%s), which is not defined before it: Kubernetes would pass it on unexpanded", e.Name, ref)
				}
			}
			known[e.Name] = e.Value
		}
		defined[e.Name] = true
	}
	for _, s := range append(append([]string{}, ct.Command...), ct.Args...) {
		for _, ref := range varRefs(s) {
			if !defined[ref] && !opaque {
				at("command/args refer to $(%s), which is not defined", ref)
			}
		}
	}
	return known
}

func (c *checker) configMapData(name string) map[string]string {
	for _, o := range c.objs {
		if cm, ok := o.obj.(*corev1.ConfigMap); ok && cm.Name == name {
			return cm.Data
		}
	}
	return nil
}

// varRefs returns the NAMEs of the $(NAME) references Kubernetes expands in
// s; "$$" escapes a dollar.
func varRefs(s string) []string {
	var out []string
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			continue
		}
		switch s[i+1] {
		case '$':
			i++
		case '(':
			if end := strings.IndexByte(s[i+2:], ')'); end >= 0 {
				out = append(out, s[i+2:i+2+end])
				i += 2 + end
			}
		}
	}
	return out
}

// ---- StatefulSet ----

func (c *checker) statefulSet(w *workload, s *appsv1.StatefulSet) {
	o := w.o
	// Pods carry controller-revision-hash=<name>-<10 chars>, a label value (<= 63).
	if len(s.Name) > 52 {
		c.probs.add(o.where, "%s: name is %d characters; StatefulSet names over 52 break the controller-revision-hash label", o.id(), len(s.Name))
	}
	if s.Spec.ServiceName == "" {
		c.probs.add(o.where, "%s: spec.serviceName is empty", o.id())
		return
	}
	svc := c.services[s.Spec.ServiceName]
	switch {
	case svc == nil:
		c.probs.add(o.where, "%s: spec.serviceName %q is not a rendered Service", o.id(), s.Spec.ServiceName)
	case svc.Spec.ClusterIP != corev1.ClusterIPNone:
		c.probs.add(o.where, "%s: governing Service %q is not headless (clusterIP: None)", o.id(), svc.Name)
	case !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(w.tpl.Labels)):
		c.probs.add(o.where, "%s: governing Service %q does not select its pods", o.id(), svc.Name)
	}
	switch s.Spec.PodManagementPolicy {
	case "", appsv1.OrderedReadyPodManagement, appsv1.ParallelPodManagement:
	default:
		c.probs.add(o.where, "%s: podManagementPolicy %q", o.id(), s.Spec.PodManagementPolicy)
	}
}

// ---- Service ----

func (c *checker) service(o *object, s *corev1.Service) {
	switch s.Spec.Type {
	case "", corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer:
	default:
		c.probs.add(o.where, "%s: type %q is not ClusterIP, NodePort or LoadBalancer", o.id(), s.Spec.Type)
	}
	if len(s.Spec.Ports) == 0 {
		c.probs.add(o.where, "%s: no ports", o.id())
	}
	names := map[string]bool{}
	for _, p := range s.Spec.Ports {
		if p.Name == "" {
			c.probs.add(o.where, "%s: port %d has no name", o.id(), p.Port)
		}
		for _, msg := range validation.IsDNS1123Label(p.Name) {
			c.probs.add(o.where, "%s: port name %q: %s", o.id(), p.Name, msg)
		}
		if names[p.Name] {
			c.probs.add(o.where, "%s: port name %q used twice", o.id(), p.Name)
		}
		names[p.Name] = true
		for _, msg := range validation.IsValidPortNum(int(p.Port)) {
			c.probs.add(o.where, "%s: port %q: %s", o.id(), p.Name, msg)
		}
		if !validProtocol(p.Protocol) {
			c.probs.add(o.where, "%s: port %q: protocol %q", o.id(), p.Name, p.Protocol)
		}
		if p.NodePort != 0 && s.Spec.Type != corev1.ServiceTypeNodePort && s.Spec.Type != corev1.ServiceTypeLoadBalancer {
			c.probs.add(o.where, "%s: port %q sets nodePort on a %s Service", o.id(), p.Name, s.Spec.Type)
		}
	}
	if len(s.Spec.Selector) == 0 {
		c.probs.add(o.where, "%s: no selector", o.id())
		return
	}
	c.fieldErrs(o, metav1validation.ValidateLabels(s.Spec.Selector, field.NewPath("spec.selector")))
	ws := c.selected(labels.SelectorFromSet(s.Spec.Selector))
	if len(ws) == 0 {
		c.probs.add(o.where, "%s: selector %v matches no rendered pod template", o.id(), s.Spec.Selector)
	}
	for _, p := range s.Spec.Ports {
		target := p.TargetPort
		if target.Type == intstr.Int && target.IntVal == 0 {
			target = intstr.FromInt32(p.Port)
		}
		for _, w := range ws {
			if !hasPort(w, target) {
				c.probs.add(o.where, "%s: port %q targets %s, which %s does not expose", o.id(), p.Name, target.String(), w.o.id())
			}
		}
	}
}

// ---- PodDisruptionBudget ----

func (c *checker) pdb(o *object, p *policyv1.PodDisruptionBudget) {
	if (p.Spec.MinAvailable == nil) == (p.Spec.MaxUnavailable == nil) {
		c.probs.add(o.where, "%s: set exactly one of minAvailable and maxUnavailable", o.id())
	}
	s := c.selectorOf(o, p.Spec.Selector, "spec.selector", false)
	if s == nil {
		return
	}
	ws := c.selected(s)
	if len(ws) == 0 {
		c.probs.add(o.where, "%s: selector matches no rendered pod template", o.id())
	}
	for _, w := range ws {
		if w.replicas == nil || w.hpa {
			continue
		}
		r := int(*w.replicas)
		if m := p.Spec.MaxUnavailable; m != nil {
			if v, err := intstr.GetScaledValueFromIntOrPercent(m, r, true); err == nil && v == 0 {
				c.probs.add(o.where, "%s: maxUnavailable %s of %d replicas of %s allows no eviction: node drains would hang", o.id(), m.String(), r, w.o.id())
			}
		}
		if m := p.Spec.MinAvailable; m != nil {
			if v, err := intstr.GetScaledValueFromIntOrPercent(m, r, true); err == nil && v >= r {
				c.probs.add(o.where, "%s: minAvailable %s of %d replicas of %s allows no eviction: node drains would hang", o.id(), m.String(), r, w.o.id())
			}
		}
	}
}

// ---- HorizontalPodAutoscaler ----

func (c *checker) hpa(o *object, h *autoscalingv2.HorizontalPodAutoscaler) {
	ref := h.Spec.ScaleTargetRef
	var target *workload
	for _, w := range c.workloads {
		if w.o.gvk.Kind == ref.Kind && w.o.meta.GetName() == ref.Name && ref.APIVersion == "apps/v1" {
			target = w
		}
	}
	if target == nil {
		c.probs.add(o.where, "%s: scaleTargetRef %s %s %s is not a rendered workload", o.id(), ref.APIVersion, ref.Kind, ref.Name)
	}
	if h.Spec.MinReplicas != nil && (*h.Spec.MinReplicas < 1 || *h.Spec.MinReplicas > h.Spec.MaxReplicas) {
		c.probs.add(o.where, "%s: minReplicas %d is not within 1..maxReplicas %d", o.id(), *h.Spec.MinReplicas, h.Spec.MaxReplicas)
	}
	if h.Spec.MaxReplicas < 1 {
		c.probs.add(o.where, "%s: maxReplicas must be at least 1", o.id())
	}
	if len(h.Spec.Metrics) == 0 {
		c.probs.add(o.where, "%s: no metrics", o.id())
	}
	for _, m := range h.Spec.Metrics {
		if m.Type != autoscalingv2.ResourceMetricSourceType || m.Resource == nil || target == nil {
			continue
		}
		if m.Resource.Target.Type != autoscalingv2.UtilizationMetricType {
			continue
		}
		for _, ct := range target.tpl.Spec.Containers {
			if _, ok := ct.Resources.Requests[m.Resource.Name]; !ok {
				c.probs.add(o.where, "%s: scales on %s utilization but container %q requests no %s", o.id(), m.Resource.Name, ct.Name, m.Resource.Name)
			}
		}
	}
}

// ---- NetworkPolicy ----

func (c *checker) networkPolicy(o *object, np *networkingv1.NetworkPolicy) {
	s := c.selectorOf(o, &np.Spec.PodSelector, "spec.podSelector", true)
	var ws []*workload
	if s != nil {
		ws = c.selected(s)
		if len(ws) == 0 {
			c.probs.add(o.where, "%s: podSelector matches no rendered pod template", o.id())
		}
	}
	if len(np.Spec.PolicyTypes) == 0 {
		c.probs.add(o.where, "%s: policyTypes is not set", o.id())
	}
	for _, t := range np.Spec.PolicyTypes {
		if t != networkingv1.PolicyTypeIngress && t != networkingv1.PolicyTypeEgress {
			c.probs.add(o.where, "%s: policyType %q", o.id(), t)
		}
	}
	ports := func(dir string, ps []networkingv1.NetworkPolicyPort, local bool) {
		for _, p := range ps {
			if p.Protocol != nil && !validProtocol(*p.Protocol) {
				c.probs.add(o.where, "%s: %s port protocol %q", o.id(), dir, *p.Protocol)
			}
			if p.Port == nil {
				continue
			}
			if p.Port.Type == intstr.Int {
				for _, msg := range validation.IsValidPortNum(int(p.Port.IntVal)) {
					c.probs.add(o.where, "%s: %s port %d: %s", o.id(), dir, p.Port.IntVal, msg)
				}
				if p.EndPort != nil && *p.EndPort < p.Port.IntVal {
					c.probs.add(o.where, "%s: %s endPort %d below port %d", o.id(), dir, *p.EndPort, p.Port.IntVal)
				}
			} else if local {
				// A named ingress port refers to the selected pods' container ports.
				for _, w := range ws {
					if !hasPort(w, *p.Port) {
						c.probs.add(o.where, "%s: %s port %q is not a port of %s", o.id(), dir, p.Port.StrVal, w.o.id())
					}
				}
			}
		}
	}
	peers := func(dir string, ps []networkingv1.NetworkPolicyPeer) {
		for _, p := range ps {
			if p.IPBlock != nil {
				if p.PodSelector != nil || p.NamespaceSelector != nil {
					c.probs.add(o.where, "%s: %s peer mixes ipBlock with selectors", o.id(), dir)
				}
				if _, _, err := net.ParseCIDR(p.IPBlock.CIDR); err != nil {
					c.probs.add(o.where, "%s: %s ipBlock.cidr %q: %v", o.id(), dir, p.IPBlock.CIDR, err)
				}
				for _, e := range p.IPBlock.Except {
					if _, _, err := net.ParseCIDR(e); err != nil {
						c.probs.add(o.where, "%s: %s ipBlock.except %q: %v", o.id(), dir, e, err)
					}
				}
				continue
			}
			if p.PodSelector == nil && p.NamespaceSelector == nil {
				c.probs.add(o.where, "%s: %s peer has no selector and no ipBlock", o.id(), dir)
			}
			for _, sel := range []*metav1.LabelSelector{p.PodSelector, p.NamespaceSelector} {
				if sel != nil {
					c.fieldErrs(o, metav1validation.ValidateLabelSelector(sel, metav1validation.LabelSelectorValidationOptions{}, field.NewPath(dir)))
				}
			}
		}
	}
	for _, r := range np.Spec.Ingress {
		ports("ingress", r.Ports, true)
		peers("ingress.from", r.From)
	}
	for _, r := range np.Spec.Egress {
		ports("egress", r.Ports, false)
		peers("egress.to", r.To)
	}
}
