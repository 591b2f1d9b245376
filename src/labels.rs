//! Enums whose values are metric labels and log words: one list per enum gives its variants,
//! `ALL` (the order of its metric series), `label()` and `Display`, so the words can never
//! drift from the values.

/// Declares a fieldless enum with a label per variant: `ALL`, `label()` and `Display`.
macro_rules! labelled {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident => $label:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$variant_meta])* $variant, )+
        }

        impl $name {
            /// Every value, in the order of its metric series.
            pub const ALL: [$name; [$($label),+].len()] = [$($name::$variant),+];

            /// The metric label and the word in logs.
            pub fn label(self) -> &'static str {
                match self {
                    $( $name::$variant => $label, )+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.label())
            }
        }
    };
}

pub(crate) use labelled;
