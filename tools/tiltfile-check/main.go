// Command tiltfile-check runs a Tiltfile in the Starlark interpreter Tilt
// itself embeds (go.starlark.net, same version and dialect options as Tilt
// v0.37.7) with stand-ins for Tilt's builtins, and prints what the Tiltfile
// asked for as JSON.
//
// Why: Tilt v0.37 cannot be built from the Go module proxy here (see
// tools/install-tilt-check.sh), and there is no cluster anyway. This catches
// what a real `tilt up` would refuse at load time: syntax errors, undefined
// builtins, wrong keyword arguments, missing files, bad config flags,
// k8s_resource on a workload that is not in the YAML, duplicate objects,
// unknown resource_deps, bad labels, live_update steps in the wrong order.
// local() runs its command for real, as Tilt does while loading.
//
// Usage: tiltfile-check [--out FILE] TILTFILE [-- TILTFILE-ARGS...]
//
// Exit status: 0 loaded and validated, 1 the Tiltfile failed, 2 bad usage.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"
	yaml "go.yaml.in/yaml/v3"
)

// Tilt's own dialect options (internal/tiltfile/starkit/environment.go).
var fileOptions = &syntax.FileOptions{Set: true, GlobalReassign: true, Recursion: true, TopLevelControl: true, While: true}

// ---- recorded model ---------------------------------------------------------

type k8sObject struct {
	Kind      string   `json:"kind"`
	Name      string   `json:"name"`
	Namespace string   `json:"namespace,omitempty"`
	Images    []string `json:"images,omitempty"`
	Source    string   `json:"source"`
}

type liveUpdateStep struct {
	Step   string   `json:"step"`
	Paths  []string `json:"paths,omitempty"`
	Local  string   `json:"local,omitempty"`
	Remote string   `json:"remote,omitempty"`
	Cmd    any      `json:"cmd,omitempty"`
}

type image struct {
	Ref        string           `json:"ref"`
	Context    string           `json:"context"`
	Dockerfile string           `json:"dockerfile"`
	Only       []string         `json:"only,omitempty"`
	Ignore     []string         `json:"ignore,omitempty"`
	LiveUpdate []liveUpdateStep `json:"live_update,omitempty"`
}

type portForward struct {
	LocalPort     int    `json:"local_port"`
	ContainerPort int    `json:"container_port,omitempty"`
	Name          string `json:"name,omitempty"`
}

type k8sResource struct {
	Workload     string        `json:"workload,omitempty"`
	NewName      string        `json:"new_name,omitempty"`
	Objects      []string      `json:"objects,omitempty"`
	PortForwards []portForward `json:"port_forwards,omitempty"`
	ResourceDeps []string      `json:"resource_deps,omitempty"`
	Labels       []string      `json:"labels,omitempty"`
	TriggerMode  string        `json:"trigger_mode"`
	AutoInit     bool          `json:"auto_init"`
}

type probeAction struct {
	Exec      []string       `json:"exec,omitempty"`
	TCPSocket map[string]any `json:"tcp_socket,omitempty"`
	HTTPGet   map[string]any `json:"http_get,omitempty"`
}

type probeSpec struct {
	InitialDelaySecs int `json:"initial_delay_secs"`
	TimeoutSecs      int `json:"timeout_secs"`
	PeriodSecs       int `json:"period_secs"`
	SuccessThreshold int `json:"success_threshold"`
	FailureThreshold int `json:"failure_threshold"`
	probeAction
}

type localResource struct {
	Name           string            `json:"name"`
	Cmd            any               `json:"cmd,omitempty"`
	ServeCmd       any               `json:"serve_cmd,omitempty"`
	Deps           []string          `json:"deps,omitempty"`
	ResourceDeps   []string          `json:"resource_deps,omitempty"`
	Labels         []string          `json:"labels,omitempty"`
	TriggerMode    string            `json:"trigger_mode"`
	AutoInit       bool              `json:"auto_init"`
	AllowParallel  bool              `json:"allow_parallel"`
	Env            map[string]string `json:"env,omitempty"`
	ServeEnv       map[string]string `json:"serve_env,omitempty"`
	Dir            string            `json:"dir,omitempty"`
	ServeDir       string            `json:"serve_dir,omitempty"`
	ReadinessProbe *probeSpec        `json:"readiness_probe,omitempty"`
	Links          []string          `json:"links,omitempty"`
}

type localCall struct {
	Cmd  any    `json:"cmd"`
	Dir  string `json:"dir,omitempty"`
	Exit int    `json:"exit"`
}

type record struct {
	Tiltfile        string          `json:"tiltfile"`
	Args            []string        `json:"args"`
	Config          map[string]any  `json:"config"`
	Local           []localCall     `json:"local"`
	K8sObjects      []k8sObject     `json:"k8s_objects"`
	Images          []image         `json:"images"`
	K8sResources    []k8sResource   `json:"k8s_resources"`
	LocalResources  []localResource `json:"local_resources"`
	Watches         []string        `json:"watch_files"`
	Settings        map[string]any  `json:"update_settings,omitempty"`
	AllowedContexts []string        `json:"allow_k8s_contexts,omitempty"`
	Warnings        []string        `json:"warnings"`
	Resources       []string        `json:"resources"`
}

// ---- small Starlark values --------------------------------------------------

// blob is Tilt's Blob: the output of local() and read_file(); str() gives its text.
type blob struct{ text string }

func (b blob) String() string        { return b.text }
func (b blob) Type() string          { return "blob" }
func (b blob) Freeze()               {}
func (b blob) Truth() starlark.Bool  { return len(b.text) > 0 }
func (b blob) Hash() (uint32, error) { return starlark.String(b.text).Hash() }

// opaque is one of Tilt's value types (probe, sync step, port_forward…).
type opaque struct {
	typ  string
	data any
}

func (o *opaque) String() string        { return fmt.Sprintf("<%s>", o.typ) }
func (o *opaque) Type() string          { return o.typ }
func (o *opaque) Freeze()               {}
func (o *opaque) Truth() starlark.Bool  { return true }
func (o *opaque) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: %s", o.typ) }

// triggerMode is TRIGGER_MODE_AUTO / TRIGGER_MODE_MANUAL.
type triggerMode string

func (t triggerMode) String() string        { return "TRIGGER_MODE_" + strings.ToUpper(string(t)) }
func (t triggerMode) Type() string          { return "TriggerMode" }
func (t triggerMode) Freeze()               {}
func (t triggerMode) Truth() starlark.Bool  { return true }
func (t triggerMode) Hash() (uint32, error) { return starlark.String(t).Hash() }

// ---- the checker ------------------------------------------------------------

type checker struct {
	dir        string
	rec        *record
	cfgDefs    map[string]string // name -> bool|string|string_list
	cfgArgsFor string
	cfgParsed  bool
}

func (c *checker) abs(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(c.dir, p)
}

func (c *checker) rel(p string) string {
	r, err := filepath.Rel(c.dir, p)
	if err != nil {
		return p
	}
	return r
}

// strOrList accepts a string, a blob or a list of strings (Tilt's Union[str, List[str]]).
func strOrList(what string, v starlark.Value) ([]string, bool, error) {
	switch x := v.(type) {
	case nil, starlark.NoneType:
		return nil, false, nil
	case starlark.String:
		return []string{string(x)}, false, nil
	case blob:
		return []string{x.text}, false, nil
	case *starlark.List, starlark.Tuple:
		var out []string
		it := starlark.Iterate(x)
		defer it.Done()
		var e starlark.Value
		for it.Next(&e) {
			s, ok := starlark.AsString(e)
			if !ok {
				return nil, true, fmt.Errorf("%s: expected a list of strings, got an element of type %s", what, e.Type())
			}
			out = append(out, s)
		}
		return out, true, nil
	default:
		return nil, false, fmt.Errorf("%s: expected a string or a list of strings, got %s", what, v.Type())
	}
}

func cmdValue(parts []string, isList bool) any {
	if len(parts) == 0 {
		return nil
	}
	if isList {
		return parts
	}
	return parts[0]
}

func strDict(what string, v starlark.Value) (map[string]string, error) {
	if v == nil || v == starlark.None {
		return nil, nil
	}
	d, ok := v.(*starlark.Dict)
	if !ok {
		return nil, fmt.Errorf("%s: expected a dict, got %s", what, v.Type())
	}
	out := map[string]string{}
	for _, item := range d.Items() {
		k, ok1 := starlark.AsString(item[0])
		val, ok2 := starlark.AsString(item[1])
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("%s: keys and values must be strings", what)
		}
		out[k] = val
	}
	return out, nil
}

var labelRe = regexp.MustCompile(`^[A-Za-z0-9]([-_.A-Za-z0-9]{0,61}[A-Za-z0-9])?$`)

func labelsOf(v starlark.Value) ([]string, error) {
	ls, _, err := strOrList("labels", v)
	if err != nil {
		return nil, err
	}
	for _, l := range ls {
		if !labelRe.MatchString(l) {
			return nil, fmt.Errorf("labels: %q is not a valid label (alphanumerics, '-', '_', '.'; at most 63)", l)
		}
	}
	return ls, nil
}

func triggerOf(v starlark.Value) (string, error) {
	if v == nil || v == starlark.None {
		return "auto", nil
	}
	t, ok := v.(triggerMode)
	if !ok {
		return "", fmt.Errorf("trigger_mode: expected TRIGGER_MODE_AUTO or TRIGGER_MODE_MANUAL, got %s", v.Type())
	}
	return string(t), nil
}

func (c *checker) addResourceName(name string) error {
	for _, r := range c.rec.Resources {
		if r == name {
			return fmt.Errorf("resource %q is defined twice", name)
		}
	}
	c.rec.Resources = append(c.rec.Resources, name)
	return nil
}

// ---- builtins ---------------------------------------------------------------

func (c *checker) local(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var command, commandBat, env, stdin starlark.Value
	var quiet, echoOff bool
	var dir string
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "command", &command, "quiet?", &quiet, "command_bat?", &commandBat, "echo_off?", &echoOff, "env?", &env, "dir?", &dir, "stdin?", &stdin); err != nil {
		return nil, err
	}
	parts, isList, err := strOrList("command", command)
	if err != nil {
		return nil, err
	}
	if len(parts) == 0 || (!isList && strings.TrimSpace(parts[0]) == "") {
		return nil, errors.New("local: empty command")
	}
	envMap, err := strDict("env", env)
	if err != nil {
		return nil, err
	}
	var cmd *exec.Cmd
	if isList {
		cmd = exec.Command(parts[0], parts[1:]...)
	} else {
		cmd = exec.Command("sh", "-c", parts[0])
	}
	cmd.Dir = c.dir
	if dir != "" {
		cmd.Dir = c.abs(dir)
	}
	cmd.Env = os.Environ()
	for k, v := range envMap {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if stdin != nil && stdin != starlark.None {
		s, _ := starlark.AsString(stdin)
		if b, ok := stdin.(blob); ok {
			s = b.text
		}
		cmd.Stdin = strings.NewReader(s)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if !quiet && !echoOff {
		fmt.Fprintf(os.Stderr, "local: %v\n", cmdValue(parts, isList))
	}
	runErr := cmd.Run()
	exit := 0
	if runErr != nil {
		exit = -1
		var ee *exec.ExitError
		if errors.As(runErr, &ee) {
			exit = ee.ExitCode()
		}
	}
	c.rec.Local = append(c.rec.Local, localCall{Cmd: cmdValue(parts, isList), Dir: dir, Exit: exit})
	if runErr != nil {
		return nil, fmt.Errorf("command %v failed: %v\nstdout:\n%s\nstderr:\n%s", cmdValue(parts, isList), runErr, stdout.String(), stderr.String())
	}
	return blob{stdout.String()}, nil
}

func (c *checker) readFile(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var path string
	var def starlark.Value
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "file_path", &path, "default?", &def); err != nil {
		return nil, err
	}
	c.rec.Watches = append(c.rec.Watches, path)
	b, err := os.ReadFile(c.abs(path))
	if err != nil {
		if def != nil && def != starlark.None {
			s, _ := starlark.AsString(def)
			return blob{s}, nil
		}
		return nil, fmt.Errorf("read_file: %v", err)
	}
	return blob{string(b)}, nil
}

func (c *checker) watchFile(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var path string
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "file_path", &path); err != nil {
		return nil, err
	}
	c.rec.Watches = append(c.rec.Watches, path)
	return starlark.None, nil
}

func (c *checker) listdir(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var dir string
	var recursive bool
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "directory", &dir, "recursive?", &recursive); err != nil {
		return nil, err
	}
	root := c.abs(dir)
	var out []starlark.Value
	if recursive {
		err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() {
				out = append(out, starlark.String(p))
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("listdir: %v", err)
		}
	} else {
		entries, err := os.ReadDir(root)
		if err != nil {
			return nil, fmt.Errorf("listdir: %v", err)
		}
		for _, e := range entries {
			out = append(out, starlark.String(filepath.Join(root, e.Name())))
		}
	}
	c.rec.Watches = append(c.rec.Watches, dir)
	return starlark.NewList(out), nil
}

// parseYAML reads a YAML stream into plain Go values; empty documents are skipped.
func parseYAML(text string) ([]any, error) {
	dec := yaml.NewDecoder(strings.NewReader(text))
	var docs []any
	for {
		var doc any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
}

func toStarlark(v any) (starlark.Value, error) {
	switch x := v.(type) {
	case nil:
		return starlark.None, nil
	case bool:
		return starlark.Bool(x), nil
	case int:
		return starlark.MakeInt(x), nil
	case int64:
		return starlark.MakeInt64(x), nil
	case uint64:
		return starlark.MakeUint64(x), nil
	case float64:
		return starlark.Float(x), nil
	case string:
		return starlark.String(x), nil
	case []any:
		l := make([]starlark.Value, 0, len(x))
		for _, e := range x {
			sv, err := toStarlark(e)
			if err != nil {
				return nil, err
			}
			l = append(l, sv)
		}
		return starlark.NewList(l), nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		d := starlark.NewDict(len(x))
		for _, k := range keys {
			sv, err := toStarlark(x[k])
			if err != nil {
				return nil, err
			}
			if err := d.SetKey(starlark.String(k), sv); err != nil {
				return nil, err
			}
		}
		return d, nil
	default:
		return starlark.String(fmt.Sprint(x)), nil
	}
}

func textOf(what string, v starlark.Value) (string, error) {
	if b, ok := v.(blob); ok {
		return b.text, nil
	}
	if s, ok := starlark.AsString(v); ok {
		return s, nil
	}
	return "", fmt.Errorf("%s: expected a string or a blob, got %s", what, v.Type())
}

func (c *checker) decodeYAMLStream(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var v starlark.Value
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "yaml", &v); err != nil {
		return nil, err
	}
	text, err := textOf("yaml", v)
	if err != nil {
		return nil, err
	}
	docs, err := parseYAML(text)
	if err != nil {
		return nil, fmt.Errorf("decode_yaml_stream: %v", err)
	}
	return toStarlark(docs)
}

// fromStarlark turns decoded (and possibly edited) YAML back into Go values.
func fromStarlark(v starlark.Value) (any, error) {
	switch x := v.(type) {
	case starlark.NoneType:
		return nil, nil
	case starlark.Bool:
		return bool(x), nil
	case starlark.Int:
		if i, ok := x.Int64(); ok {
			return i, nil
		}
		return x.String(), nil
	case starlark.Float:
		return float64(x), nil
	case starlark.String:
		return string(x), nil
	case blob:
		return x.text, nil
	case *starlark.List, starlark.Tuple:
		var out []any
		it := starlark.Iterate(x)
		defer it.Done()
		var e starlark.Value
		for it.Next(&e) {
			g, err := fromStarlark(e)
			if err != nil {
				return nil, err
			}
			out = append(out, g)
		}
		return out, nil
	case *starlark.Dict:
		out := map[string]any{}
		for _, item := range x.Items() {
			k, ok := starlark.AsString(item[0])
			if !ok {
				return nil, fmt.Errorf("dict key %s is not a string", item[0])
			}
			g, err := fromStarlark(item[1])
			if err != nil {
				return nil, err
			}
			out[k] = g
		}
		return out, nil
	default:
		return nil, fmt.Errorf("cannot encode a %s", v.Type())
	}
}

func (c *checker) encodeYAMLStream(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var objs *starlark.List
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "objs", &objs); err != nil {
		return nil, err
	}
	var b strings.Builder
	for i := 0; i < objs.Len(); i++ {
		g, err := fromStarlark(objs.Index(i))
		if err != nil {
			return nil, fmt.Errorf("encode_yaml_stream: %v", err)
		}
		y, err := yaml.Marshal(g)
		if err != nil {
			return nil, fmt.Errorf("encode_yaml_stream: %v", err)
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(y)
	}
	return blob{b.String()}, nil
}

func (c *checker) decodeJSON(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var v starlark.Value
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "json", &v); err != nil {
		return nil, err
	}
	text, err := textOf("json", v)
	if err != nil {
		return nil, err
	}
	var out any
	if err := json.Unmarshal([]byte(text), &out); err != nil {
		return nil, fmt.Errorf("decode_json: %v", err)
	}
	return toStarlark(out)
}

// objectsOf extracts kind/name/namespace/images from parsed Kubernetes YAML.
func objectsOf(docs []any, source string) ([]k8sObject, error) {
	var out []k8sObject
	for i, d := range docs {
		m, ok := d.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: document %d is not a mapping", source, i+1)
		}
		kind, _ := m["kind"].(string)
		meta, _ := m["metadata"].(map[string]any)
		name, _ := meta["name"].(string)
		if kind == "" || name == "" {
			return nil, fmt.Errorf("%s: document %d has no kind or metadata.name", source, i+1)
		}
		if kind == "List" {
			return nil, fmt.Errorf("%s: kind List is not supported by this check", source)
		}
		ns, _ := meta["namespace"].(string)
		out = append(out, k8sObject{Kind: kind, Name: name, Namespace: ns, Images: imagesIn(m), Source: source})
	}
	return out, nil
}

// imagesIn finds every containers[].image / initContainers[].image below v.
func imagesIn(v any) []string {
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if (k == "containers" || k == "initContainers") && e != nil {
					if l, ok := e.([]any); ok {
						for _, ct := range l {
							if cm, ok := ct.(map[string]any); ok {
								if img, ok := cm["image"].(string); ok {
									out = append(out, img)
								}
							}
						}
					}
				}
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return out
}

func (c *checker) k8sYAML(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var v starlark.Value
	var allowDuplicates bool
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "yaml", &v, "allow_duplicates?", &allowDuplicates); err != nil {
		return nil, err
	}
	var objs []k8sObject
	if b, ok := v.(blob); ok {
		docs, err := parseYAML(b.text)
		if err != nil {
			return nil, fmt.Errorf("k8s_yaml: %v", err)
		}
		o, err := objectsOf(docs, "<blob>")
		if err != nil {
			return nil, fmt.Errorf("k8s_yaml: %v", err)
		}
		objs = o
	} else {
		paths, _, err := strOrList("yaml", v)
		if err != nil {
			return nil, fmt.Errorf("k8s_yaml: %v", err)
		}
		for _, p := range paths {
			b, err := os.ReadFile(c.abs(p))
			if err != nil {
				return nil, fmt.Errorf("k8s_yaml: %v", err)
			}
			c.rec.Watches = append(c.rec.Watches, p)
			docs, err := parseYAML(string(b))
			if err != nil {
				return nil, fmt.Errorf("k8s_yaml: %s: %v", p, err)
			}
			o, err := objectsOf(docs, c.rel(c.abs(p)))
			if err != nil {
				return nil, fmt.Errorf("k8s_yaml: %v", err)
			}
			objs = append(objs, o...)
		}
	}
	if !allowDuplicates {
		for _, n := range objs {
			for _, o := range c.rec.K8sObjects {
				if strings.EqualFold(o.Kind, n.Kind) && o.Name == n.Name && o.Namespace == n.Namespace {
					return nil, fmt.Errorf("k8s_yaml: duplicate YAML: %s %s/%s (in %s and %s); pass allow_duplicates=True if that is meant", n.Kind, n.Namespace, n.Name, o.Source, n.Source)
				}
			}
			c.rec.K8sObjects = append(c.rec.K8sObjects, n)
		}
	} else {
		c.rec.K8sObjects = append(c.rec.K8sObjects, objs...)
	}
	return starlark.None, nil
}

func (c *checker) liveUpdateStep(kind string) *starlark.Builtin {
	return starlark.NewBuiltin(kind, func(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		switch kind {
		case "sync":
			var local, remote string
			if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "local_path", &local, "remote_path", &remote); err != nil {
				return nil, err
			}
			if !strings.HasPrefix(remote, "/") {
				return nil, fmt.Errorf("sync: remote_path must be absolute, got %q", remote)
			}
			return &opaque{"live_update_sync_step", liveUpdateStep{Step: "sync", Local: c.abs(local), Remote: remote}}, nil
		case "run":
			var cmd, trigger starlark.Value
			var echoOff bool
			if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "cmd", &cmd, "trigger?", &trigger, "echo_off?", &echoOff); err != nil {
				return nil, err
			}
			parts, isList, err := strOrList("cmd", cmd)
			if err != nil {
				return nil, err
			}
			trig, _, err := strOrList("trigger", trigger)
			if err != nil {
				return nil, err
			}
			for i := range trig {
				trig[i] = c.abs(trig[i])
			}
			return &opaque{"live_update_run_step", liveUpdateStep{Step: "run", Cmd: cmdValue(parts, isList), Paths: trig}}, nil
		case "fall_back_on":
			var files starlark.Value
			if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "files", &files); err != nil {
				return nil, err
			}
			fs, _, err := strOrList("files", files)
			if err != nil {
				return nil, err
			}
			for i := range fs {
				fs[i] = c.abs(fs[i])
			}
			return &opaque{"live_update_fall_back_on_step", liveUpdateStep{Step: "fall_back_on", Paths: fs}}, nil
		default: // restart_container
			if err := starlark.UnpackArgs(fn.Name(), args, kwargs); err != nil {
				return nil, err
			}
			return &opaque{"live_update_restart_container_step", liveUpdateStep{Step: "restart_container"}}, nil
		}
	})
}

func (c *checker) dockerBuild(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var ref, context, dockerfile, target, network, platform string
	var buildArgs, dockerfileContents, liveUpdate, ignore, only, entrypoint, ssh, secret, extraTag, containerArgs, cacheFrom, extraHosts starlark.Value
	var matchInEnvVars, pull bool
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs,
		"ref", &ref, "context", &context, "build_args?", &buildArgs, "dockerfile?", &dockerfile,
		"dockerfile_contents?", &dockerfileContents, "live_update?", &liveUpdate, "match_in_env_vars?", &matchInEnvVars,
		"ignore?", &ignore, "only?", &only, "entrypoint?", &entrypoint, "target?", &target, "ssh?", &ssh,
		"network?", &network, "secret?", &secret, "extra_tag?", &extraTag, "container_args?", &containerArgs,
		"cache_from?", &cacheFrom, "pull?", &pull, "platform?", &platform, "extra_hosts?", &extraHosts); err != nil {
		return nil, err
	}
	ctxDir := c.abs(context)
	if st, err := os.Stat(ctxDir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("docker_build: context %q is not a directory", context)
	}
	if dockerfile == "" {
		dockerfile = filepath.Join(context, "Dockerfile")
	}
	hasContents := dockerfileContents != nil && dockerfileContents != starlark.None
	if !hasContents {
		if _, err := os.Stat(c.abs(dockerfile)); err != nil {
			return nil, fmt.Errorf("docker_build(%q): cannot read %s: %v", ref, dockerfile, err)
		}
		c.rec.Watches = append(c.rec.Watches, dockerfile)
	}
	img := image{Ref: ref, Context: c.rel(ctxDir), Dockerfile: dockerfile}
	var err error
	if img.Only, _, err = strOrList("only", only); err != nil {
		return nil, err
	}
	if img.Ignore, _, err = strOrList("ignore", ignore); err != nil {
		return nil, err
	}
	if liveUpdate != nil && liveUpdate != starlark.None {
		l, ok := liveUpdate.(*starlark.List)
		if !ok {
			return nil, fmt.Errorf("docker_build: live_update must be a list, got %s", liveUpdate.Type())
		}
		seenOther := false
		for i := 0; i < l.Len(); i++ {
			o, ok := l.Index(i).(*opaque)
			if !ok || !strings.HasPrefix(o.typ, "live_update_") {
				return nil, fmt.Errorf("docker_build: live_update[%d] is not a live update step (sync, run, fall_back_on, restart_container)", i)
			}
			step := o.data.(liveUpdateStep)
			switch step.Step {
			case "restart_container":
				return nil, errors.New("docker_build: live_update: restart_container() has been deprecated for k8s resources (Tilt refuses it); use a process that restarts itself")
			case "fall_back_on":
				if seenOther {
					return nil, errors.New("docker_build: live_update: fall_back_on steps must come first")
				}
			case "sync":
				if rel, err := filepath.Rel(ctxDir, step.Local); err != nil || strings.HasPrefix(rel, "..") {
					return nil, fmt.Errorf("docker_build: live_update: sync(%q) is outside the build context %q", step.Local, ctxDir)
				}
				seenOther = true
			default:
				seenOther = true
			}
			rel := step
			if rel.Local != "" {
				rel.Local = c.rel(rel.Local)
			}
			for j := range rel.Paths {
				rel.Paths[j] = c.rel(rel.Paths[j])
			}
			img.LiveUpdate = append(img.LiveUpdate, rel)
		}
	}
	for _, o := range c.rec.Images {
		if o.Ref == ref {
			return nil, fmt.Errorf("docker_build: image %q is built twice", ref)
		}
	}
	c.rec.Images = append(c.rec.Images, img)
	return starlark.None, nil
}

func (c *checker) portForwardBuiltin(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var local int
	var container starlark.Value
	var name, linkPath, host string
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "local_port", &local, "container_port?", &container, "name?", &name, "link_path?", &linkPath, "host?", &host); err != nil {
		return nil, err
	}
	pf := portForward{LocalPort: local, Name: name}
	if container != nil && container != starlark.None {
		n, err := starlark.AsInt32(container)
		if err != nil {
			return nil, fmt.Errorf("port_forward: container_port: %v", err)
		}
		pf.ContainerPort = n
	}
	return &opaque{"PortForward", pf}, nil
}

func parsePortForward(v starlark.Value) (portForward, error) {
	switch x := v.(type) {
	case starlark.Int:
		n, err := starlark.AsInt32(x)
		return portForward{LocalPort: n}, err
	case starlark.String:
		var l, r int
		if n, _ := fmt.Sscanf(string(x), "%d:%d", &l, &r); n == 2 && !strings.Contains(string(x)[strings.Index(string(x), ":")+1:], ":") {
			return portForward{LocalPort: l, ContainerPort: r}, nil
		}
		if n, _ := fmt.Sscanf(string(x), "%d", &l); n == 1 && fmt.Sprint(l) == string(x) {
			return portForward{LocalPort: l}, nil
		}
		return portForward{}, fmt.Errorf("port_forwards: %q is not PORT or LOCAL:CONTAINER", string(x))
	case *opaque:
		if pf, ok := x.data.(portForward); ok {
			return pf, nil
		}
	}
	return portForward{}, fmt.Errorf("port_forwards: unexpected %s", v.Type())
}

func (c *checker) k8sResource(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var workload, newName, podReadiness, discovery string
	var portForwards, extraSelectors, trigger, resourceDeps, objects, links, labels starlark.Value
	autoInit := true
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "workload?", &workload, "new_name?", &newName,
		"port_forwards?", &portForwards, "extra_pod_selectors?", &extraSelectors, "trigger_mode?", &trigger,
		"resource_deps?", &resourceDeps, "objects?", &objects, "auto_init?", &autoInit, "pod_readiness?", &podReadiness,
		"links?", &links, "labels?", &labels, "discovery_strategy?", &discovery); err != nil {
		return nil, err
	}
	if workload == "" && (newName == "" || objects == nil) {
		return nil, errors.New("k8s_resource: give a workload, or new_name with objects")
	}
	r := k8sResource{Workload: workload, NewName: newName, AutoInit: autoInit}
	var err error
	if r.TriggerMode, err = triggerOf(trigger); err != nil {
		return nil, err
	}
	if r.Labels, err = labelsOf(labels); err != nil {
		return nil, err
	}
	if r.ResourceDeps, _, err = strOrList("resource_deps", resourceDeps); err != nil {
		return nil, err
	}
	if r.Objects, _, err = strOrList("objects", objects); err != nil {
		return nil, err
	}
	if portForwards != nil && portForwards != starlark.None {
		var items []starlark.Value
		if l, ok := portForwards.(*starlark.List); ok {
			for i := 0; i < l.Len(); i++ {
				items = append(items, l.Index(i))
			}
		} else {
			items = []starlark.Value{portForwards}
		}
		for _, it := range items {
			pf, err := parsePortForward(it)
			if err != nil {
				return nil, err
			}
			r.PortForwards = append(r.PortForwards, pf)
		}
	}
	c.rec.K8sResources = append(c.rec.K8sResources, r)
	return starlark.None, nil
}

func (c *checker) probeAction(kind string) *starlark.Builtin {
	return starlark.NewBuiltin(kind, func(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		switch kind {
		case "exec_action":
			var command *starlark.List
			if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "command", &command); err != nil {
				return nil, err
			}
			argv, _, err := strOrList("command", command)
			if err != nil {
				return nil, err
			}
			if len(argv) == 0 {
				return nil, errors.New("exec_action: empty command")
			}
			return &opaque{"ExecAction", probeAction{Exec: argv}}, nil
		case "tcp_socket_action":
			var port int
			host := "localhost"
			if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "port", &port, "host?", &host); err != nil {
				return nil, err
			}
			return &opaque{"TCPSocketAction", probeAction{TCPSocket: map[string]any{"host": host, "port": port}}}, nil
		default: // http_get_action
			var port int
			host, scheme, path := "localhost", "http", ""
			if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "port", &port, "host?", &host, "scheme?", &scheme, "path?", &path); err != nil {
				return nil, err
			}
			return &opaque{"HTTPGetAction", probeAction{HTTPGet: map[string]any{"host": host, "port": port, "scheme": scheme, "path": path}}}, nil
		}
	})
}

func (c *checker) probe(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	p := probeSpec{TimeoutSecs: 1, PeriodSecs: 10, SuccessThreshold: 1, FailureThreshold: 3}
	var ex, hg, tcp starlark.Value
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "initial_delay_secs?", &p.InitialDelaySecs, "timeout_secs?", &p.TimeoutSecs,
		"period_secs?", &p.PeriodSecs, "success_threshold?", &p.SuccessThreshold, "failure_threshold?", &p.FailureThreshold,
		"exec?", &ex, "http_get?", &hg, "tcp_socket?", &tcp); err != nil {
		return nil, err
	}
	n := 0
	for _, pair := range []struct {
		v   starlark.Value
		typ string
	}{{ex, "ExecAction"}, {hg, "HTTPGetAction"}, {tcp, "TCPSocketAction"}} {
		if pair.v == nil || pair.v == starlark.None {
			continue
		}
		o, ok := pair.v.(*opaque)
		if !ok || o.typ != pair.typ {
			return nil, fmt.Errorf("probe: expected a %s, got %s", pair.typ, pair.v.Type())
		}
		a := o.data.(probeAction)
		p.Exec, p.HTTPGet, p.TCPSocket = a.Exec, a.HTTPGet, a.TCPSocket
		n++
	}
	if n != 1 {
		return nil, errors.New("probe: exactly one of exec, http_get, tcp_socket is required")
	}
	return &opaque{"Probe", p}, nil
}

func (c *checker) localResource(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name, dir, serveDir string
	var cmd, deps, trigger, resourceDeps, ignore, serveCmd, cmdBat, serveCmdBat, links, labels, env, serveEnv, readiness starlark.Value
	autoInit := true
	var allowParallel bool
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "name", &name, "cmd?", &cmd, "deps?", &deps, "trigger_mode?", &trigger,
		"resource_deps?", &resourceDeps, "ignore?", &ignore, "auto_init?", &autoInit, "serve_cmd?", &serveCmd,
		"cmd_bat?", &cmdBat, "serve_cmd_bat?", &serveCmdBat, "allow_parallel?", &allowParallel, "links?", &links,
		"labels?", &labels, "env?", &env, "serve_env?", &serveEnv, "readiness_probe?", &readiness, "dir?", &dir, "serve_dir?", &serveDir); err != nil {
		return nil, err
	}
	r := localResource{Name: name, AutoInit: autoInit, AllowParallel: allowParallel, Dir: dir, ServeDir: serveDir}
	parts, isList, err := strOrList("cmd", cmd)
	if err != nil {
		return nil, err
	}
	r.Cmd = cmdValue(parts, isList)
	if r.Cmd == "" {
		r.Cmd = nil
	}
	parts, isList, err = strOrList("serve_cmd", serveCmd)
	if err != nil {
		return nil, err
	}
	r.ServeCmd = cmdValue(parts, isList)
	if r.ServeCmd == "" {
		r.ServeCmd = nil
	}
	if r.Cmd == nil && r.ServeCmd == nil {
		return nil, fmt.Errorf("local_resource(%q): cmd or serve_cmd is required", name)
	}
	if r.Deps, _, err = strOrList("deps", deps); err != nil {
		return nil, err
	}
	if r.ResourceDeps, _, err = strOrList("resource_deps", resourceDeps); err != nil {
		return nil, err
	}
	if r.Labels, err = labelsOf(labels); err != nil {
		return nil, err
	}
	if r.TriggerMode, err = triggerOf(trigger); err != nil {
		return nil, err
	}
	if r.Env, err = strDict("env", env); err != nil {
		return nil, err
	}
	if r.ServeEnv, err = strDict("serve_env", serveEnv); err != nil {
		return nil, err
	}
	if readiness != nil && readiness != starlark.None {
		o, ok := readiness.(*opaque)
		if !ok || o.typ != "Probe" {
			return nil, fmt.Errorf("local_resource(%q): readiness_probe must be a probe(), got %s", name, readiness.Type())
		}
		if r.ServeCmd == nil {
			return nil, fmt.Errorf("local_resource(%q): readiness_probe needs a serve_cmd", name)
		}
		p := o.data.(probeSpec)
		r.ReadinessProbe = &p
	}
	for _, d := range []string{dir, serveDir} {
		if d != "" {
			if st, err := os.Stat(c.abs(d)); err != nil || !st.IsDir() {
				return nil, fmt.Errorf("local_resource(%q): dir %q does not exist", name, d)
			}
		}
	}
	if err := c.addResourceName(name); err != nil {
		return nil, err
	}
	c.rec.LocalResources = append(c.rec.LocalResources, r)
	return starlark.None, nil
}

func (c *checker) updateSettings(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	maxParallel, upsertTimeout := 3, 30
	var suppress starlark.Value
	ssa := "auto"
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "max_parallel_updates?", &maxParallel, "k8s_upsert_timeout_secs?", &upsertTimeout,
		"suppress_unused_image_warnings?", &suppress, "k8s_server_side_apply?", &ssa); err != nil {
		return nil, err
	}
	if maxParallel < 1 {
		return nil, errors.New("update_settings: max_parallel_updates must be >= 1")
	}
	c.rec.Settings = map[string]any{"max_parallel_updates": maxParallel, "k8s_upsert_timeout_secs": upsertTimeout}
	return starlark.None, nil
}

func (c *checker) allowContexts(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var v starlark.Value
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "contexts", &v); err != nil {
		return nil, err
	}
	l, _, err := strOrList("contexts", v)
	if err != nil {
		return nil, err
	}
	c.rec.AllowedContexts = append(c.rec.AllowedContexts, l...)
	return starlark.None, nil
}

func (c *checker) link(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var url, name string
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "url", &url, "name?", &name); err != nil {
		return nil, err
	}
	return &opaque{"Link", url}, nil
}

func failBuiltin(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var msg string
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "msg", &msg); err != nil {
		return nil, err
	}
	return nil, errors.New(msg)
}

func (c *checker) warn(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var msg string
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "msg", &msg); err != nil {
		return nil, err
	}
	c.rec.Warnings = append(c.rec.Warnings, msg)
	fmt.Fprintf(os.Stderr, "warning: %s\n", msg)
	return starlark.None, nil
}

// ---- config.* ---------------------------------------------------------------

func (c *checker) define(kind string) *starlark.Builtin {
	return starlark.NewBuiltin("config.define_"+kind, func(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var name, usage string
		var positional bool
		if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "name", &name, "args?", &positional, "usage?", &usage); err != nil {
			return nil, err
		}
		if c.cfgParsed {
			return nil, fmt.Errorf("%s(%q): config settings must be defined before config.parse()", fn.Name(), name)
		}
		if _, dup := c.cfgDefs[name]; dup {
			return nil, fmt.Errorf("%s: %q is defined twice", fn.Name(), name)
		}
		if positional {
			if c.cfgArgsFor != "" {
				return nil, fmt.Errorf("%s(%q): only one setting can take the positional args (%q does)", fn.Name(), name, c.cfgArgsFor)
			}
			c.cfgArgsFor = name
		}
		c.cfgDefs[name] = kind
		return starlark.None, nil
	})
}

// parseConfig mirrors Tilt's config.parse: flags after `--` set the defined
// settings; only the settings that were given are in the result.
func (c *checker) parseConfig(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs); err != nil {
		return nil, err
	}
	c.cfgParsed = true
	vals := map[string]any{}
	in := c.rec.Args
	for i := 0; i < len(in); i++ {
		a := in[i]
		if !strings.HasPrefix(a, "--") {
			if c.cfgArgsFor == "" {
				return nil, fmt.Errorf("config.parse: positional arg %q given but no setting takes args", a)
			}
			switch c.cfgDefs[c.cfgArgsFor] {
			case "string_list":
				l, _ := vals[c.cfgArgsFor].([]string)
				vals[c.cfgArgsFor] = append(l, a)
			case "string":
				vals[c.cfgArgsFor] = a
			default:
				return nil, fmt.Errorf("config.parse: %q cannot take positional args", c.cfgArgsFor)
			}
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		kind, ok := c.cfgDefs[name]
		if !ok {
			return nil, fmt.Errorf("config.parse: unknown flag --%s (defined: %s)", name, strings.Join(sortedKeys(c.cfgDefs), ", "))
		}
		switch kind {
		case "bool":
			b := true
			if hasValue {
				switch value {
				case "true", "1":
				case "false", "0":
					b = false
				default:
					return nil, fmt.Errorf("config.parse: --%s: %q is not a bool", name, value)
				}
			}
			vals[name] = b
		default:
			if !hasValue {
				if i+1 >= len(in) {
					return nil, fmt.Errorf("config.parse: --%s needs a value", name)
				}
				i++
				value = in[i]
			}
			if kind == "string_list" {
				l, _ := vals[name].([]string)
				vals[name] = append(l, value)
			} else {
				vals[name] = value
			}
		}
	}
	c.rec.Config = vals
	d := starlark.NewDict(len(vals))
	for _, k := range sortedKeys(vals) {
		var sv starlark.Value
		switch x := vals[k].(type) {
		case bool:
			sv = starlark.Bool(x)
		case string:
			sv = starlark.String(x)
		case []string:
			l := make([]starlark.Value, len(x))
			for i, s := range x {
				l[i] = starlark.String(s)
			}
			sv = starlark.NewList(l)
		}
		_ = d.SetKey(starlark.String(k), sv)
	}
	return d, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ---- os.* -------------------------------------------------------------------

func (c *checker) osModule() *starlarkstruct.Module {
	str1 := func(name string, f func(string) (starlark.Value, error)) *starlark.Builtin {
		return starlark.NewBuiltin(name, func(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var p string
			if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "path", &p); err != nil {
				return nil, err
			}
			return f(p)
		})
	}
	path := &starlarkstruct.Module{Name: "os.path", Members: starlark.StringDict{
		"exists": str1("os.path.exists", func(p string) (starlark.Value, error) {
			_, err := os.Stat(c.abs(p))
			return starlark.Bool(err == nil), nil
		}),
		"abspath":  str1("os.path.abspath", func(p string) (starlark.Value, error) { return starlark.String(c.abs(p)), nil }),
		"basename": str1("os.path.basename", func(p string) (starlark.Value, error) { return starlark.String(filepath.Base(p)), nil }),
		"dirname":  str1("os.path.dirname", func(p string) (starlark.Value, error) { return starlark.String(filepath.Dir(p)), nil }),
		"isdir": str1("os.path.isdir", func(p string) (starlark.Value, error) {
			st, err := os.Stat(c.abs(p))
			return starlark.Bool(err == nil && st.IsDir()), nil
		}),
		"isfile": str1("os.path.isfile", func(p string) (starlark.Value, error) {
			st, err := os.Stat(c.abs(p))
			return starlark.Bool(err == nil && !st.IsDir()), nil
		}),
		"join": starlark.NewBuiltin("os.path.join", func(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			if len(kwargs) > 0 {
				return nil, errors.New("os.path.join: unexpected keyword arguments")
			}
			parts := make([]string, len(args))
			for i, a := range args {
				s, ok := starlark.AsString(a)
				if !ok {
					return nil, fmt.Errorf("os.path.join: argument %d is not a string", i+1)
				}
				parts[i] = s
			}
			return starlark.String(filepath.Join(parts...)), nil
		}),
	}}
	return &starlarkstruct.Module{Name: "os", Members: starlark.StringDict{
		"path": path,
		"name": starlark.String("posix"),
		"getcwd": starlark.NewBuiltin("os.getcwd", func(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			if err := starlark.UnpackArgs(fn.Name(), args, kwargs); err != nil {
				return nil, err
			}
			return starlark.String(c.dir), nil
		}),
		"getenv": starlark.NewBuiltin("os.getenv", func(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var key string
			var def starlark.Value = starlark.None
			if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "key", &key, "default?", &def); err != nil {
				return nil, err
			}
			if v, ok := os.LookupEnv(key); ok {
				return starlark.String(v), nil
			}
			return def, nil
		}),
	}}
}

// ---- assembly: what Tilt checks after the Tiltfile ran -----------------------

var workloadKinds = map[string]bool{"deployment": true, "statefulset": true, "daemonset": true, "replicaset": true, "job": true, "cronjob": true, "pod": true}

func (c *checker) assemble() error {
	r := c.rec
	names := map[string]bool{}
	for _, n := range r.Resources {
		names[n] = true
	}
	// Tilt makes one resource per workload, named after it.
	workloads := map[string]k8sObject{}
	for _, o := range r.K8sObjects {
		if workloadKinds[strings.ToLower(o.Kind)] {
			if names[o.Name] {
				return fmt.Errorf("resource name %q is used by a workload and another resource", o.Name)
			}
			workloads[o.Name] = o
			names[o.Name] = true
		}
	}
	for _, kr := range r.K8sResources {
		if kr.Workload != "" {
			w, ok := workloads[strings.SplitN(kr.Workload, ":", 2)[0]]
			if !ok {
				return fmt.Errorf("k8s_resource: no workload named %q in the YAML (workloads: %s)", kr.Workload, strings.Join(sortedKeys(workloads), ", "))
			}
			_ = w
		}
		if kr.NewName != "" {
			if kr.Workload == "" && names[kr.NewName] {
				return fmt.Errorf("k8s_resource: new_name %q is already a resource", kr.NewName)
			}
			names[kr.NewName] = true
		}
		for _, sel := range kr.Objects {
			parts := strings.Split(sel, ":")
			matched := false
			for _, o := range r.K8sObjects {
				if o.Name != parts[0] {
					continue
				}
				if len(parts) > 1 && !strings.EqualFold(parts[1], o.Kind) {
					continue
				}
				if len(parts) > 2 && parts[2] != o.Namespace {
					continue
				}
				matched = true
			}
			if !matched {
				return fmt.Errorf("k8s_resource: no object identified by %q", sel)
			}
		}
	}
	check := func(owner string, deps []string) error {
		for _, d := range deps {
			if !names[d] {
				return fmt.Errorf("%s: resource_deps names an unknown resource %q (resources: %s)", owner, d, strings.Join(sortedKeys(names), ", "))
			}
		}
		return nil
	}
	for _, lr := range r.LocalResources {
		if err := check(fmt.Sprintf("local_resource(%q)", lr.Name), lr.ResourceDeps); err != nil {
			return err
		}
	}
	for _, kr := range r.K8sResources {
		if err := check(fmt.Sprintf("k8s_resource(%q)", kr.Workload+kr.NewName), kr.ResourceDeps); err != nil {
			return err
		}
	}
	// Images built but used by no object are a warning in Tilt; objects that
	// need an image nobody builds would be pulled from a registry.
	for _, img := range r.Images {
		used := false
		for _, o := range r.K8sObjects {
			for _, ref := range o.Images {
				if ref == img.Ref || strings.HasPrefix(ref, img.Ref+":") {
					used = true
				}
			}
		}
		if !used {
			r.Warnings = append(r.Warnings, fmt.Sprintf("image %q is built but not used in any k8s object", img.Ref))
		}
	}
	r.Resources = sortedKeys(names)
	return nil
}

func main() {
	args := os.Args[1:]
	out := ""
	var tiltfile string
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-h" || a == "--help":
			fmt.Println("usage: tiltfile-check [--out FILE] TILTFILE [-- TILTFILE-ARGS...]\n\nRuns TILTFILE with stand-ins for Tilt's builtins and prints what it declared as JSON.\nExit 0: loaded and validated; 1: the Tiltfile failed; 2: bad usage.")
			return
		case a == "--out":
			if i+1 >= len(args) {
				fmt.Fprintln(os.Stderr, "tiltfile-check: --out needs a file")
				os.Exit(2)
			}
			i++
			out = args[i]
		case a == "--":
			rest = args[i+1:]
			i = len(args)
		case strings.HasPrefix(a, "-"):
			fmt.Fprintf(os.Stderr, "tiltfile-check: unknown option %s (try --help)\n", a)
			os.Exit(2)
		default:
			if tiltfile != "" {
				fmt.Fprintf(os.Stderr, "tiltfile-check: one Tiltfile only (got %s and %s)\n", tiltfile, a)
				os.Exit(2)
			}
			tiltfile = a
		}
	}
	if tiltfile == "" {
		fmt.Fprintln(os.Stderr, "tiltfile-check: no Tiltfile given (try --help)")
		os.Exit(2)
	}
	absTiltfile, err := filepath.Abs(tiltfile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tiltfile-check:", err)
		os.Exit(2)
	}
	src, err := os.ReadFile(absTiltfile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tiltfile-check:", err)
		os.Exit(2)
	}
	if rest == nil {
		rest = []string{}
	}
	c := &checker{dir: filepath.Dir(absTiltfile), cfgDefs: map[string]string{},
		rec: &record{Tiltfile: absTiltfile, Args: rest, Config: map[string]any{}, Local: []localCall{}, K8sObjects: []k8sObject{}, Images: []image{},
			K8sResources: []k8sResource{}, LocalResources: []localResource{}, Watches: []string{}, Warnings: []string{}, Resources: []string{}}}

	b := func(name string, f func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error)) *starlark.Builtin {
		return starlark.NewBuiltin(name, f)
	}
	predeclared := starlark.StringDict{
		"local":               b("local", c.local),
		"read_file":           b("read_file", c.readFile),
		"watch_file":          b("watch_file", c.watchFile),
		"listdir":             b("listdir", c.listdir),
		"decode_yaml_stream":  b("decode_yaml_stream", c.decodeYAMLStream),
		"decode_json":         b("decode_json", c.decodeJSON),
		"encode_yaml_stream":  b("encode_yaml_stream", c.encodeYAMLStream),
		"k8s_yaml":            b("k8s_yaml", c.k8sYAML),
		"k8s_resource":        b("k8s_resource", c.k8sResource),
		"docker_build":        b("docker_build", c.dockerBuild),
		"local_resource":      b("local_resource", c.localResource),
		"port_forward":        b("port_forward", c.portForwardBuiltin),
		"link":                b("link", c.link),
		"probe":               b("probe", c.probe),
		"exec_action":         c.probeAction("exec_action"),
		"tcp_socket_action":   c.probeAction("tcp_socket_action"),
		"http_get_action":     c.probeAction("http_get_action"),
		"sync":                c.liveUpdateStep("sync"),
		"run":                 c.liveUpdateStep("run"),
		"fall_back_on":        c.liveUpdateStep("fall_back_on"),
		"restart_container":   c.liveUpdateStep("restart_container"),
		"update_settings":     b("update_settings", c.updateSettings),
		"allow_k8s_contexts":  b("allow_k8s_contexts", c.allowContexts),
		"fail":                b("fail", failBuiltin),
		"warn":                b("warn", c.warn),
		"TRIGGER_MODE_AUTO":   triggerMode("auto"),
		"TRIGGER_MODE_MANUAL": triggerMode("manual"),
		"os":                  c.osModule(),
		"config": &starlarkstruct.Module{Name: "config", Members: starlark.StringDict{
			"define_bool":        c.define("bool"),
			"define_string":      c.define("string"),
			"define_string_list": c.define("string_list"),
			"parse":              b("config.parse", c.parseConfig),
		}},
	}
	thread := &starlark.Thread{
		Name:  "tiltfile",
		Print: func(_ *starlark.Thread, msg string) { fmt.Fprintln(os.Stderr, msg) },
		// Tilt would fetch load('ext://…') from the internet; nothing here may.
		Load: func(_ *starlark.Thread, module string) (starlark.StringDict, error) {
			return nil, fmt.Errorf("load(%q): not supported by this check; the Tiltfile must not load extensions", module)
		},
	}
	if _, err := starlark.ExecFileOptions(fileOptions, thread, absTiltfile, src, predeclared); err != nil {
		var ee *starlark.EvalError
		if errors.As(err, &ee) {
			fmt.Fprintln(os.Stderr, ee.Backtrace())
		} else {
			fmt.Fprintln(os.Stderr, err)
		}
		os.Exit(1)
	}
	if err := c.assemble(); err != nil {
		fmt.Fprintln(os.Stderr, "Tiltfile:", err)
		os.Exit(1)
	}
	js, err := json.MarshalIndent(c.rec, "", "  ")
	if err != nil {
		fmt.Fprintln(os.Stderr, "tiltfile-check:", err)
		os.Exit(1)
	}
	js = append(js, '\n')
	if out == "" {
		_, _ = os.Stdout.Write(js)
		return
	}
	if err := os.WriteFile(out, js, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "tiltfile-check:", err)
		os.Exit(1)
	}
}
