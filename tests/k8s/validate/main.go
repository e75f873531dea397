// Command kws-k8s-validate checks rendered Kubernetes manifests (the output of
// `helm template`) against the Kubernetes API's own Go types, strictly: every
// document is decoded into its typed struct (k8s.io/api) with unknown fields,
// duplicate fields and case-mismatched field names refused (sigs.k8s.io/json,
// the decoder the API server itself uses), then checked for the semantic rules
// in checks.go. It needs no cluster.
//
//	kws-k8s-validate [-namespace NS] [-label NAME] FILE...   ("-" reads stdin)
//
// Prints one line per file: OK (counts per kind) or FAIL with every problem.
// Exit status: 0 all valid, 1 a problem was found, 2 bad usage or unreadable input.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	sigsyaml "sigs.k8s.io/yaml"
)

// kinds maps each accepted apiVersion/kind to a constructor of its typed
// struct. Anything else is an error: the chart must render only these.
var kinds = map[schema.GroupVersionKind]func() any{
	{Group: "apps", Version: "v1", Kind: "Deployment"}:                     func() any { return &appsv1.Deployment{} },
	{Group: "apps", Version: "v1", Kind: "StatefulSet"}:                    func() any { return &appsv1.StatefulSet{} },
	{Group: "", Version: "v1", Kind: "Service"}:                            func() any { return &corev1.Service{} },
	{Group: "", Version: "v1", Kind: "ConfigMap"}:                          func() any { return &corev1.ConfigMap{} },
	{Group: "", Version: "v1", Kind: "Secret"}:                             func() any { return &corev1.Secret{} },
	{Group: "", Version: "v1", Kind: "ServiceAccount"}:                     func() any { return &corev1.ServiceAccount{} },
	{Group: "policy", Version: "v1", Kind: "PodDisruptionBudget"}:          func() any { return &policyv1.PodDisruptionBudget{} },
	{Group: "autoscaling", Version: "v2", Kind: "HorizontalPodAutoscaler"}: func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	{Group: "networking.k8s.io", Version: "v1", Kind: "NetworkPolicy"}:     func() any { return &networkingv1.NetworkPolicy{} },
}

// object is one decoded document.
type object struct {
	where string // file#index (helm's "# Source:" path when present)
	gvk   schema.GroupVersionKind
	obj   any
	meta  metav1.Object
}

func (o *object) id() string {
	return fmt.Sprintf("%s %s", o.gvk.Kind, o.meta.GetName())
}

// problems collects the findings of one file.
type problems struct{ list []string }

func (p *problems) add(where, format string, args ...any) {
	p.list = append(p.list, where+": "+fmt.Sprintf(format, args...))
}

func main() {
	namespace := flag.String("namespace", "", "every object must be in this namespace (empty: any, but set)")
	label := flag.String("label", "", "name printed for the input instead of the file name")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: %s [-namespace NS] [-label NAME] FILE...  (\"-\" is stdin)\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	failed := false
	for _, file := range flag.Args() {
		data, err := readInput(file)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kws-k8s-validate: %v\n", err)
			os.Exit(2)
		}
		name := file
		if *label != "" {
			name = *label
		}
		objs, probs := validate(file, data, *namespace)
		if len(probs.list) > 0 {
			failed = true
			fmt.Printf("FAIL %s: %d problem(s)\n", name, len(probs.list))
			for _, p := range probs.list {
				fmt.Printf("  - %s\n", p)
			}
			continue
		}
		fmt.Printf("OK   %s: %d objects: %s\n", name, len(objs), countKinds(objs))
	}
	if failed {
		os.Exit(1)
	}
}

func readInput(file string) ([]byte, error) {
	if file == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(file)
}

func countKinds(objs []*object) string {
	n := map[string]int{}
	for _, o := range objs {
		n[o.gvk.Kind]++
	}
	keys := make([]string, 0, len(n))
	for k := range n {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, n[k]))
	}
	return strings.Join(parts, " ")
}

// validate decodes every document of data strictly, then runs the semantic
// checks over the whole set (they cross-reference objects).
func validate(file string, data []byte, namespace string) ([]*object, *problems) {
	probs := &problems{}
	var objs []*object
	reader := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for index := 0; ; index++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			probs.add(fmt.Sprintf("%s#%d", file, index), "cannot split YAML: %v", err)
			break
		}
		where := fmt.Sprintf("%s#%d", file, index)
		if src := helmSource(doc); src != "" {
			where = fmt.Sprintf("%s#%d (%s)", file, index, src)
		}
		if isEmptyDoc(doc) {
			continue
		}
		o := decode(where, doc, probs)
		if o != nil {
			objs = append(objs, o)
		}
	}
	if len(objs) == 0 && len(probs.list) == 0 {
		probs.add(file, "no Kubernetes objects in the input")
	}
	check(objs, namespace, probs)
	return objs, probs
}

// helmSource returns the template path of helm's "# Source: ..." comment.
func helmSource(doc []byte) string {
	for _, line := range strings.Split(string(doc), "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), "# Source: "); ok {
			return s
		}
	}
	return ""
}

// isEmptyDoc reports a document of only comments and blank lines.
func isEmptyDoc(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		t := strings.TrimSpace(line)
		if t != "" && !strings.HasPrefix(t, "#") && t != "---" {
			return false
		}
	}
	return true
}

// decode turns one YAML document into its typed object, strictly.
func decode(where string, doc []byte, probs *problems) *object {
	// YAMLToJSONStrict refuses duplicate keys at the YAML level.
	js, err := sigsyaml.YAMLToJSONStrict(doc)
	if err != nil {
		probs.add(where, "invalid YAML: %v", err)
		return nil
	}
	if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
		return nil
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(js, &tm); err != nil {
		probs.add(where, "not a Kubernetes object: %v", err)
		return nil
	}
	if tm.APIVersion == "" || tm.Kind == "" {
		probs.add(where, "apiVersion and kind are required (got %q, %q)", tm.APIVersion, tm.Kind)
		return nil
	}
	gv, err := schema.ParseGroupVersion(tm.APIVersion)
	if err != nil {
		probs.add(where, "bad apiVersion %q: %v", tm.APIVersion, err)
		return nil
	}
	gvk := gv.WithKind(tm.Kind)
	mk, ok := kinds[gvk]
	if !ok {
		probs.add(where, "unsupported apiVersion/kind %s/%s (known: %s)", tm.APIVersion, tm.Kind, knownKinds())
		return nil
	}
	obj := mk()
	// The API server's own decoder: case-sensitive field names, and the
	// strict errors name each unknown or duplicate field with its path.
	strictErrs, err := sigsjson.UnmarshalStrict(js, obj,
		sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		probs.add(where, "%s: %v", gvk.Kind, err)
		return nil
	}
	for _, se := range strictErrs {
		probs.add(where, "%s: %v", gvk.Kind, se)
	}
	if len(strictErrs) > 0 {
		return nil
	}
	acc, err := meta.Accessor(obj)
	if err != nil {
		probs.add(where, "%s: no metadata: %v", gvk.Kind, err)
		return nil
	}
	return &object{where: where, gvk: gvk, obj: obj, meta: acc}
}

func knownKinds() string {
	var s []string
	for gvk := range kinds {
		av := gvk.Version
		if gvk.Group != "" {
			av = gvk.Group + "/" + gvk.Version
		}
		s = append(s, av+" "+gvk.Kind)
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}
