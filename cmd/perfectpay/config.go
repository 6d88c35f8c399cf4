package main

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/spf13/viper"

	"github.com/perfectpay/perfectpay/app"
)

// loadConfig reads the config file (when given or found as ./config.yaml),
// then PERFECTPAY_<SECTION>_<KEY> environment variables, over the defaults.
func loadConfig(path string) (app.Config, *viper.Viper, error) {
	v := viper.New()
	setDefaults(v, "", reflect.ValueOf(app.Defaults()))
	v.SetEnvPrefix("PERFECTPAY")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	if path != "" {
		v.SetConfigFile(path)
		if err := v.ReadInConfig(); err != nil {
			return app.Config{}, nil, fmt.Errorf("read config %s: %w", path, err)
		}
	}
	var cfg app.Config
	if err := v.Unmarshal(&cfg); err != nil {
		return app.Config{}, nil, fmt.Errorf("config: %w", err)
	}
	return cfg, v, nil
}

// setDefaults registers every leaf of the default Config with viper, so
// that every key has a default and environment overrides work for all of
// them (viper only consults the environment for keys it knows).
func setDefaults(v *viper.Viper, prefix string, val reflect.Value) {
	t := val.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		key := f.Tag.Get("mapstructure")
		if key == "" {
			continue
		}
		if prefix != "" {
			key = prefix + "." + key
		}
		fv := val.Field(i)
		if fv.Kind() == reflect.Struct && fv.Type() != reflect.TypeOf(time.Time{}) {
			setDefaults(v, key, fv)
			continue
		}
		if d, ok := fv.Interface().(time.Duration); ok {
			v.SetDefault(key, d.String())
			continue
		}
		v.SetDefault(key, fv.Interface())
	}
}
