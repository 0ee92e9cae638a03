//! A declarative helper for MANSCDP element groups made mostly of plain-text children.
//!
//! `text_fields!` declares a struct whose listed fields are `Option<String>` children matched
//! by element name (ASCII case-insensitive, with optional alternative spellings), extra
//! hand-written fields, and an `extra: Vec<Element>` that keeps every child this crate does not
//! model. It generates:
//!
//! - `take_text_field(&mut self, el) -> Option<Element>`: stores `el` in the first matching
//!   empty field when it is a plain text element (no attributes, no children), otherwise hands
//!   it back;
//! - `text_field(&self, name) -> Option<&str>`: a field by element name;
//! - `write_text_fields(&self, w)`: writes the set fields in declaration order, with the first
//!   spelling.
//!
//! A field given twice keeps the first occurrence; later ones go to `extra`, so nothing a device
//! sends is dropped, and writing then re-reading yields the same value.

macro_rules! text_fields {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                $field:ident : $tag:literal $(| $alias:literal)*
            ),* $(,)?
        }
        $(
            more {
                $(
                    $(#[$xmeta:meta])*
                    pub $xfield:ident : $xty:ty
                ),* $(,)?
            }
        )?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct $name {
            $(
                $(#[$fmeta])*
                #[doc = concat!("\n\nElement `<", $tag, ">`.")]
                pub $field: Option<String>,
            )*
            $($(
                $(#[$xmeta])*
                pub $xfield: $xty,
            )*)?
            /// Child elements not modelled above, in document order (nothing a device sends is
            /// dropped; they are written back after the known fields).
            pub extra: Vec<$crate::manscdp::Element>,
        }

        impl $name {
            /// Element names of the plain-text fields, first spelling of each.
            #[allow(dead_code)]
            pub(crate) const TEXT_FIELD_NAMES: &'static [&'static str] = &[$($tag),*];

            /// Store `el` in the matching empty text field, or give it back.
            #[allow(unused_variables, unused_mut)]
            pub(crate) fn take_text_field(
                &mut self,
                el: $crate::manscdp::Element,
            ) -> Option<$crate::manscdp::Element> {
                if el.is_plain() {
                    $(
                        if self.$field.is_none()
                            && (el.name_is($tag) $(|| el.name_is($alias))*)
                        {
                            self.$field = Some(el.text);
                            return None;
                        }
                    )*
                }
                Some(el)
            }

            /// The value of the text field whose element name (or alternative spelling) is
            /// `name`, ASCII case-insensitive.
            #[allow(unused_variables, dead_code)]
            pub(crate) fn text_field(&self, name: &str) -> Option<&str> {
                $(
                    if name.eq_ignore_ascii_case($tag) $(|| name.eq_ignore_ascii_case($alias))* {
                        return self.$field.as_deref();
                    }
                )*
                None
            }

            /// Write the set text fields in declaration order.
            #[allow(unused_variables)]
            pub(crate) fn write_text_fields(&self, w: &mut $crate::manscdp::xml::XmlWriter) {
                $(
                    if let Some(v) = &self.$field {
                        w.text_element($tag, v);
                    }
                )*
            }
        }
    };
}
